// Package manytasks is B19 and B20's workload: n goroutines parked on a
// channel receive, released by closing it, each joined (its result read
// from its own done channel, as a conc handle's join does).
package manytasks

import (
	"os"
	"strconv"
	"strings"
	"time"
)

func vmhwm() int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		panic(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			v, _ := strconv.Atoi(strings.Fields(line[6:])[0])
			return v
		}
	}
	panic("no VmHWM")
}

// Run returns the seconds from the first spawn to the last join and the
// peak RSS in kB.
func Run(n int) (float64, int) {
	park, ready := make(chan bool), make(chan bool, n)
	t0 := time.Now()
	dones := make([]chan int, n)
	for i := 0; i < n; i++ {
		done := make(chan int, 1)
		dones[i] = done
		go func(i int) {
			ready <- true
			<-park
			done <- i + 1
		}(i)
	}
	for i := 0; i < n; i++ {
		<-ready
	}
	close(park)
	sum := 0
	for i := 0; i < n; i++ {
		sum += <-dones[i]
	}
	secs := time.Since(t0).Seconds()
	if sum != n*(n+1)/2 {
		panic("lost a result")
	}
	return secs, vmhwm()
}
