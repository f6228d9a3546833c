// B20: B19's peak RSS (MB) with 100,000 parked goroutines.
package main

import (
	"fmt"

	"concbench/benchutil"
	"concbench/manytasks"
)

func main() {
	_, kb := manytasks.Run(benchutil.Sized(100000))
	fmt.Printf("%.1f MB\n", float64(kb)/1024)
}
