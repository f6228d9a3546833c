// B11 uncontended WaitGroup: Add(1); Done() on one sync.WaitGroup from the
// main goroutine, 2M pairs. Prints ns per pair beyond a call baseline (a
// loop calling a trivial non-inlined function twice per iteration), as the
// Lua script does. Each loop is timed 3 times, alternating, and the
// fastest time of each is used; the raw numbers go to stderr.
package main

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"concbench/benchutil"
)

var sink int

//go:noinline
func trivial(x int) int { return x }

func baseline(n int) float64 {
	t0 := time.Now()
	for i := 0; i < n; i++ {
		sink += trivial(1)
		sink += trivial(1)
	}
	return float64(time.Since(t0).Nanoseconds()) / float64(n)
}

func main() {
	n := benchutil.Sized(2000000)
	const reps = 3
	var wg sync.WaitGroup
	pairs := func(n int) float64 {
		t0 := time.Now()
		for i := 0; i < n; i++ {
			wg.Add(1)
			wg.Done()
		}
		return float64(time.Since(t0).Nanoseconds()) / float64(n)
	}
	w := n
	if w > 10000 {
		w = 10000
	}
	pairs(w) // warm-up
	baseline(w)
	bestWg, bestBase := 1e18, 1e18
	raw := []string{}
	for r := 0; r < reps; r++ {
		m := pairs(n)
		b := baseline(n)
		if m < bestWg {
			bestWg = m
		}
		if b < bestBase {
			bestBase = b
		}
		raw = append(raw, fmt.Sprintf("%.1f/%.1f", m, b))
	}
	wg.Wait() // the counter is zero: returns at once
	fmt.Fprintf(os.Stderr, "b11: N=%d add+done %.1f ns/pair, call baseline %.1f ns/pair (best of %d; waitgroup/baseline per rep: %s)\n",
		n, bestWg, bestBase, reps, strings.Join(raw, " "))
	fmt.Printf("%.1f ns/pair\n", bestWg-bestBase)
}
