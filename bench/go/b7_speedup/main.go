// B7 parallel speed-up: 16 CPU-bound jobs (2M iterations of integer
// arithmetic each) taken from a channel by 1 goroutine, then by 2, three
// times in turn. Prints the best time with 1 over the best with 2 (as
// the Lua script does).
package main

import (
	"fmt"
	"os"
	"time"

	"concbench/benchutil"
)

const jobsN = 16

func run(nw, iter int) (time.Duration, int64) {
	jobs, results := make(chan int, jobsN), make(chan int64, jobsN)
	for i := 0; i < jobsN; i++ {
		jobs <- iter
	}
	close(jobs)
	t0 := time.Now()
	for k := 0; k < nw; k++ {
		go func() {
			for n := range jobs {
				var x int64
				for i := 1; i <= n; i++ {
					x = (x*1103515245 + 12345 + int64(i)) & 0x7fffffff
				}
				results <- x
			}
		}()
	}
	first := <-results
	for i := 1; i < jobsN; i++ {
		if x := <-results; x != first {
			fmt.Fprintln(os.Stderr, "jobs disagree")
			os.Exit(1)
		}
	}
	return time.Since(t0), first
}

func main() {
	iter := benchutil.Sized(2000000)
	var t1, t2 time.Duration
	var x1, x2 int64
	for r := 0; r < 3; r++ {
		t, x := run(1, iter)
		if r == 0 || t < t1 {
			t1 = t
		}
		x1 = x
		t, x = run(2, iter)
		if r == 0 || t < t2 {
			t2 = t
		}
		x2 = x
	}
	if x1 != x2 {
		fmt.Fprintln(os.Stderr, "runs disagree")
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "b7: 1 worker %.3f s, 2 workers %.3f s (checksum %d)\n",
		t1.Seconds(), t2.Seconds(), x1)
	fmt.Printf("%.2f x\n", t1.Seconds()/t2.Seconds())
}
