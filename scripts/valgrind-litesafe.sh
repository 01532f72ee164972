#!/bin/sh
# The litesafe command under valgrind memcheck, as LITESAFE_BIN for the
# integration tests (make valgrind). A memory error or a definite/indirect
# leak makes the command exit 97 (the tests then fail on its exit code) and
# leaves its report in $LS_VALGRIND_LOGS/vg.<pid>.log.
exec valgrind --quiet --error-exitcode=97 --leak-check=full \
  --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect \
  --child-silent-after-fork=yes --log-file="${LS_VALGRIND_LOGS:-/tmp}/vg.%p.log" \
  "${LS_VALGRIND_BIN:?set LS_VALGRIND_BIN to the litesafe binary}" "$@"
