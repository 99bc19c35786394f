# Count system calls per phase from `strace -f -o FILE` output of
# TestSyscallMarkers; prints calls per operation (N=1000 per phase).
{
  if (match($0, /lockdir-syscount\/begin\/[A-Za-z]+/)) { phase = substr($0, RSTART+23, RLENGTH-23); on = 1; next }
  if ($0 ~ /lockdir-syscount\/end\//) { on = 0; next }
  if ($0 ~ /lockdir-syscount\/pause/) { on = 0; next }
  if ($0 ~ /lockdir-syscount\/resume/) { on = 1; next }
  if (!on || $0 ~ /resumed>/ || $0 ~ /^[0-9]+ +(\+\+\+|---)/) next
  if (match($0, /^[0-9]+ +[a-z_0-9]+\(/)) {
    s = substr($0, RSTART, RLENGTH-1); sub(/^[0-9]+ +/, "", s)
    count[phase " " s]++
  }
}
END { for (k in count) printf "%-40s %8.3f\n", k, count[k] / N }
