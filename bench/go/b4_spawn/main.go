// B4 spawn: start and join goroutines one after another, each returning 1
// on a channel (the join). Prints microseconds per goroutine.
package main

import (
	"fmt"
	"os"
	"strconv"
	"time"
)

// scale: os.Args[1] is a scale factor (default 1; BENCH_QUICK=1 makes it 0.1).
func sized(n int) int {
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

func main() {
	n := sized(2000)
	f := func() int { return 1 }
	t0 := time.Now()
	for i := 0; i < n; i++ {
		res := make(chan int, 1)
		go func() { res <- f() }()
		if v := <-res; v != 1 {
			fmt.Fprintln(os.Stderr, "wrong result")
			os.Exit(1)
		}
	}
	el := time.Since(t0)
	fmt.Printf("%.2f us/worker\n", float64(el.Nanoseconds())/1e3/float64(n))
}
