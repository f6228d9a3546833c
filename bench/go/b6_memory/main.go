// B6 memory: VmHWM (max RSS) with 200 goroutines parked on a channel
// receive minus VmHWM before any, per goroutine. Prints KB per goroutine.
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"concbench/benchutil"
)

func status(field string) int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		panic(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, field+":") {
			f := strings.Fields(line[len(field)+1:])
			v, _ := strconv.Atoi(f[0])
			return v
		}
	}
	panic("no " + field)
}

func main() {
	n := benchutil.Sized(200)
	park, ready := make(chan bool), make(chan bool, n)
	runtime.GC()
	base := status("VmHWM")
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ready <- true
			<-park
		}()
	}
	for i := 0; i < n; i++ {
		<-ready
	}
	time.Sleep(200 * time.Millisecond)
	with := status("VmHWM")
	close(park)
	wg.Wait()
	fmt.Fprintf(os.Stderr, "b6: N=%d VmHWM base=%d kB parked=%d kB (VmRSS now %d kB)\n",
		n, base, with, status("VmRSS"))
	fmt.Printf("%.1f KB/worker\n", float64(with-base)/float64(n))
}
