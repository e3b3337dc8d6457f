#!/bin/sh
# A nearest-centroid trainer in POSIX shell and awk: no Python.
#
#   sh centroids.sh DATA.csv MODEL_DIR LABEL
#
# DATA.csv has a header; LABEL names the class column, every other column is a numeric
# feature. Writes MODEL_DIR/centroids.csv: a header (LABEL, then the features), then one row
# per class with the class's mean of each feature.
set -eu
data="$1"
model_dir="$2"
label="$3"

awk -F, -v label="$label" '
NR == 1 {
    for (i = 1; i <= NF; i++) { name[i] = $i; if ($i == label) col = i }
    if (!col) { print "no column " label " in the header: " $0 > "/dev/stderr"; exit 2 }
    next
}
{
    c = $col
    if (!(c in count)) classes[++k] = c
    count[c]++
    for (i = 1; i <= NF; i++) if (i != col) total[c, i] += $i
}
END {
    if (!col) exit 2
    if (k == 0) { print "no rows in the data" > "/dev/stderr"; exit 3 }
    header = label
    for (i = 1; i <= NF; i++) if (i != col) header = header "," name[i]
    print header
    for (j = 1; j <= k; j++) {
        c = classes[j]; row = c
        for (i = 1; i <= NF; i++) if (i != col) row = row "," sprintf("%.10g", total[c, i] / count[c])
        print row
    }
    printf "%d rows, %d classes\n", NR - 1, k > "/dev/stderr"
}' "$data" > "$model_dir/centroids.csv"
