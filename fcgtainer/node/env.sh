#!/bin/bash
# A native task's environment: exports the submitter's values (allow-listed variables, the
# site's env.set) from their 0600 file by builtins, then runs the payload, so that no value
# is ever on a command line.   env.sh ENV_FILE CMD...
# (It runs under `env -i` with the contract's values already set.)
set -u
file=$1
shift
[ -r "$file" ] || { echo "fcgtainer: environment: cannot read $file" >&2; exit 2; }
while IFS= read -r -d '' kv; do export "${kv?}"; done < "$file"
exec "$@"
