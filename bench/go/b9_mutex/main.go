// B9 uncontended mutex: Lock(); Unlock() on one sync.Mutex from the main
// goroutine, 2M pairs. Prints ns per pair beyond a call baseline (a loop
// calling a trivial non-inlined function twice per iteration), as the Lua
// script does (benchutil.BeyondBaseline).
package main

import (
	"fmt"
	"os"
	"sync"
	"time"

	"concbench/benchutil"
)

func main() {
	var mu sync.Mutex
	benchutil.BeyondBaseline("b9", "lock+unlock", benchutil.Sized(2000000),
		func(n int) float64 {
			t0 := time.Now()
			for i := 0; i < n; i++ {
				mu.Lock()
				mu.Unlock()
			}
			return float64(time.Since(t0).Nanoseconds()) / float64(n)
		})
	if !mu.TryLock() {
		fmt.Fprintln(os.Stderr, "mutex left locked")
		os.Exit(1)
	}
	mu.Unlock()
}
