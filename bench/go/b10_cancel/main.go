// B10 cancel-to-wake: 100 goroutines block on <-ctx.Done() (each first
// signals readiness on a channel); the main goroutine calls cancel() and
// waits on a WaitGroup. Prints the microseconds from cancel() until
// wg.Wait() returned, the median of several rounds (raw rounds on stderr).
package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"concbench/benchutil"
)

const (
	nw   = 100
	park = 50 * time.Millisecond // between the last "ready" and cancel()
)

func round() float64 {
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan bool, nw)
	var wg sync.WaitGroup
	errs := make([]error, nw)
	for i := 0; i < nw; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			ready <- true
			<-ctx.Done()
			errs[i] = ctx.Err()
		}(i)
	}
	for i := 0; i < nw; i++ {
		<-ready
	}
	time.Sleep(park) // let every goroutine get from its send into the receive
	t0 := time.Now()
	cancel()
	wg.Wait()
	el := time.Since(t0)
	for i, err := range errs {
		if err != context.Canceled {
			fmt.Fprintln(os.Stderr, "goroutine", i, ":", err)
			os.Exit(1)
		}
	}
	return float64(el.Nanoseconds()) / 1e3
}

func main() {
	rounds := benchutil.Sized(11)
	if rounds < 3 {
		rounds = 3
	}
	round() // warm-up
	ts := make([]float64, rounds)
	raw := make([]string, rounds)
	for r := range ts {
		ts[r] = round()
		raw[r] = fmt.Sprintf("%.1f", ts[r])
	}
	fmt.Fprintf(os.Stderr, "b10: %d goroutines, %d rounds (us): %s\n", nw, rounds, strings.Join(raw, " "))
	fmt.Printf("%.1f us\n", benchutil.Median(ts))
}
