// B4 spawn: start and join goroutines one after another, each returning 1
// on a channel (the join). Prints microseconds per goroutine.
package main

import (
	"fmt"
	"os"
	"time"

	"concbench/benchutil"
)

func main() {
	n := benchutil.Sized(2000)
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
