// B11 uncontended WaitGroup: Add(1); Done() on one sync.WaitGroup from
// the main goroutine, 2M pairs. Prints ns per pair beyond a call baseline,
// as the Lua script does (benchutil.BeyondBaseline).
package main

import (
	"sync"
	"time"

	"concbench/benchutil"
)

func main() {
	var wg sync.WaitGroup
	benchutil.BeyondBaseline("b11", "add+done", benchutil.Sized(2000000),
		func(n int) float64 {
			t0 := time.Now()
			for i := 0; i < n; i++ {
				wg.Add(1)
				wg.Done()
			}
			return float64(time.Since(t0).Nanoseconds()) / float64(n)
		})
	wg.Wait()
}
