# bench/chart.gp: drawn by bench/chart (see there). Variables: datafile
# (two columns: "ID workload", conc's cost relative to Go), outfile,
# subtitle. Each bar runs from parity (1) to the workload's ratio, on a
# log scale, so "2x slower" and "2x faster" are the same length.
set terminal svg size 900,480 dynamic enhanced font "sans,12" background "white"
set output outfile
set datafile separator "\t"
set title "conc relative to Go (Go = 1; above 1: conc slower or bigger)\n".subtitle noenhanced
set logscale y 2
set yrange [0.25:64]
set ytics ("1/4" 0.25, "1/2" 0.5, "1" 1, "2x" 2, "4x" 4, "8x" 8, "16x" 16, "32x" 32, "64x" 64)
set grid ytics lc rgb "#dddddd"
set xtics noenhanced scale 0 font "sans,10"
set bmargin 4
set xrange [-0.7:*]
set border 3
set key off
set arrow from graph 0, first 1 to graph 1, first 1 nohead lw 1.5 lc rgb "#333333"
set style fill solid 0.85 noborder
w = 0.35
plot datafile using 0:2:($0-w):($0+w):(1):($2 > 1 ? $2 : 1):xtic(1) \
       with boxxyerror lc rgb "#c0504d", \
     datafile using 0:2:($0-w):($0+w):($2 < 1 ? $2 : 1):(1) \
       with boxxyerror lc rgb "#4f81bd", \
     datafile using 0:($2 >= 1 ? $2 * 1.12 : $2 / 1.12):(sprintf("%.2g", $2)) \
       with labels font "sans,10"
