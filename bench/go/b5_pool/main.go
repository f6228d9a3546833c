// B5 pool: a sender goroutine puts jobs on a jobs channel (cap 1024); 4
// worker goroutines send x*x on a results channel (cap 1024); the main
// goroutine sums the results. Prints jobs per second.
package main

import (
	"fmt"
	"os"
	"strconv"
	"sync"
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
	n := sized(200000)
	const nw = 4
	jobs, results := make(chan int, 1024), make(chan int, 1024)
	t0 := time.Now()
	go func() {
		for i := 1; i <= n; i++ {
			jobs <- i
		}
		close(jobs)
	}()
	var wg sync.WaitGroup
	for k := 0; k < nw; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for x := range jobs {
				results <- x * x
			}
		}()
	}
	sum := 0
	for i := 0; i < n; i++ {
		sum += <-results
	}
	el := time.Since(t0)
	wg.Wait()
	if sum != n*(n+1)*(2*n+1)/6 {
		fmt.Fprintln(os.Stderr, "wrong sum")
		os.Exit(1)
	}
	fmt.Printf("%.0f jobs/s\n", float64(n)/el.Seconds())
}
