# Shell functions the benchmark scripts share; sourced, not run.

# The database URL $DB with its search path set to schema $1.
in_schema() {
  local sep='?'
  [[ $DB == *\?* ]] && sep='&'
  echo "$DB${sep}options=-csearch_path%3D$1"
}

# The first port from $1 on that nothing listens on (loopback).
free_port() {
  local port=$1
  while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
  echo "$port"
}
