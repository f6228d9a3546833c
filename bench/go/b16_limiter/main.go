// B16 limiter allow: Allow() on one token bucket (1e9 events per second,
// burst 1000: every call is allowed, and each one reads the clock,
// refills and takes a token) from the main goroutine, 2M calls. Prints
// ns per allow; timed 3 times after a warm-up, the fastest printed.
//
// golang.org/x/time/rate cannot be fetched here (no module proxy), so
// the bucket is written by hand with the same work per call as rate's
// AllowN: a mutex, time.Now(), a lazy refill capped at the burst, one
// token taken.
package main

import (
	"fmt"
	"math"
	"os"
	"sync"
	"time"

	"concbench/benchutil"
)

type bucket struct {
	mu     sync.Mutex
	rate   float64 // tokens per second
	burst  float64
	tokens float64
	last   time.Time
}

func newBucket(rate float64, burst int) *bucket {
	return &bucket{rate: rate, burst: float64(burst),
		tokens: float64(burst), last: time.Now()}
}

// Allow takes a token if one is there, refilling lazily from the clock.
func (b *bucket) Allow() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	if elapsed := now.Sub(b.last); elapsed > 0 {
		b.tokens = math.Min(b.burst, b.tokens+elapsed.Seconds()*b.rate)
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func run(b *bucket, n int) float64 {
	allowed := 0
	t0 := time.Now()
	for i := 0; i < n; i++ {
		if b.Allow() {
			allowed++
		}
	}
	ns := float64(time.Since(t0).Nanoseconds()) / float64(n)
	if allowed != n {
		fmt.Fprintf(os.Stderr, "only %d of %d allowed\n", allowed, n)
		os.Exit(1)
	}
	return ns
}

func main() {
	n := benchutil.Sized(2000000)
	b := newBucket(1e9, 1000)
	w := n
	if w > 10000 {
		w = 10000
	}
	run(b, w)
	best := math.Inf(1)
	raw := make([]float64, 3)
	for r := range raw {
		raw[r] = run(b, n)
		best = math.Min(best, raw[r])
	}
	fmt.Fprintf(os.Stderr, "b16: N=%d allow %.1f ns (best of 3: %.1f %.1f %.1f)\n",
		n, best, raw[0], raw[1], raw[2])
	fmt.Printf("%.1f ns/allow\n", best)
}
