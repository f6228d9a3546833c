// B5 pool: a sender goroutine puts jobs on a jobs channel (cap 1024); 4
// worker goroutines send x*x on a results channel (cap 1024); the main
// goroutine sums the results. Prints jobs per second.
package main

import (
	"fmt"
	"os"
	"sync"
	"time"

	"concbench/benchutil"
)

func main() {
	n := benchutil.Sized(200000)
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
