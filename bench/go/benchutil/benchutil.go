// Package benchutil holds what the Go twins share: the size scaling that
// matches bench/common.lua's sized, medians, and the call-baseline loop.
package benchutil

import (
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Sized scales n by the scale factor: os.Args[1] if given (default 1;
// BENCH_QUICK=1 makes it 0.1). The result is at least 1. A scale that is
// not a number exits with status 2.
func Sized(n int) int {
	s := 1.0
	if os.Getenv("BENCH_QUICK") == "1" {
		s = 0.1
	}
	if len(os.Args) > 1 {
		v, err := strconv.ParseFloat(os.Args[1], 64)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bad scale:", os.Args[1])
			os.Exit(2)
		}
		s = v
	}
	m := int(float64(n)*s + 0.5)
	if m < 1 {
		m = 1
	}
	return m
}

// Median returns the median of xs (sorting xs in place); 0 if empty.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	sort.Float64s(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}

var sink int

//go:noinline
func trivial(x int) int { return x }

// callBaseline returns ns per iteration of a loop that calls a trivial
// non-inlined function twice: the call overhead B9 and B11 subtract.
func callBaseline(n int) float64 {
	t0 := time.Now()
	for i := 0; i < n; i++ {
		sink += trivial(1)
		sink += trivial(1)
	}
	return float64(time.Since(t0).Nanoseconds()) / float64(n)
}

// BeyondBaseline times pairs(n) (ns per pair) and the call baseline 3
// times each, alternating, after a warm-up; writes the raw figures to
// stderr and prints the best pair time minus the best baseline as
// "<x> ns/pair", as bench/common.lua's beyond_baseline does.
func BeyondBaseline(name, what string, n int, pairs func(int) float64) {
	const reps = 3
	w := n
	if w > 10000 {
		w = 10000
	}
	pairs(w)
	callBaseline(w)
	best, base := math.Inf(1), math.Inf(1)
	raw := []string{}
	for r := 0; r < reps; r++ {
		p, b := pairs(n), callBaseline(n)
		best, base = math.Min(best, p), math.Min(base, b)
		raw = append(raw, fmt.Sprintf("%.1f/%.1f", p, b))
	}
	fmt.Fprintf(os.Stderr, "%s: N=%d %s %.1f ns/pair, call baseline %.1f ns/pair (best of %d; pair/baseline per rep: %s)\n",
		name, n, what, best, base, reps, strings.Join(raw, " "))
	fmt.Printf("%.1f ns/pair\n", best-base)
}
