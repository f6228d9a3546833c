// B14 uncontended semaphore: acquire; release on a semaphore of 1 from
// the main goroutine, 2M pairs. Prints ns per pair beyond a call baseline,
// as the Lua script does (benchutil.BeyondBaseline).
// golang.org/x/sync/semaphore cannot be fetched here: the twin is the
// channel semaphore of the chapter (a send acquires, a receive releases).
package main

import (
	"fmt"
	"os"
	"time"

	"concbench/benchutil"
)

func main() {
	sem := make(chan struct{}, 1)
	benchutil.BeyondBaseline("b14", "acquire+release", benchutil.Sized(2000000),
		func(n int) float64 {
			t0 := time.Now()
			for i := 0; i < n; i++ {
				sem <- struct{}{}
				<-sem
			}
			return float64(time.Since(t0).Nanoseconds()) / float64(n)
		})
	if len(sem) != 0 {
		fmt.Fprintln(os.Stderr, "weight left held")
		os.Exit(1)
	}
}
