// B13 errgroup: one group runs 1,000 tiny functions (each adds 1 to an
// atomic counter and returns nil), then Wait. Prints microseconds per
// function (the best of 5 rounds after a warm-up round), as the Lua
// script does. golang.org/x/sync/errgroup cannot be fetched here, so the
// group is written by hand as x/sync writes it: a sync.WaitGroup, the
// first error captured under a sync.Once, and a context canceled then
// (WithCancel: go.mod says Go 1.19, before WithCancelCause).
package main

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"concbench/benchutil"
)

type group struct {
	wg      sync.WaitGroup
	errOnce sync.Once
	err     error
	cancel  context.CancelFunc
}

func withContext(ctx context.Context) (*group, context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	return &group{cancel: cancel}, ctx
}

func (g *group) Go(f func() error) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		if err := f(); err != nil {
			g.errOnce.Do(func() {
				g.err = err
				g.cancel()
			})
		}
	}()
}

func (g *group) Wait() error {
	g.wg.Wait()
	g.cancel()
	return g.err
}

func main() {
	n := benchutil.Sized(1000)
	var count atomic.Int64
	round := func() float64 {
		g, _ := withContext(context.Background())
		t0 := time.Now()
		for i := 0; i < n; i++ {
			g.Go(func() error { count.Add(1); return nil })
		}
		if err := g.Wait(); err != nil {
			panic(err)
		}
		return float64(time.Since(t0).Nanoseconds()) / 1e3 / float64(n)
	}
	round()
	best := 1e300
	for r := 0; r < 5; r++ {
		if v := round(); v < best {
			best = v
		}
	}
	if count.Load() != int64(6*n) {
		fmt.Fprintln(os.Stderr, "a function ran more or less than once")
		os.Exit(1)
	}
	fmt.Printf("%.3f us/function\n", best)
}
