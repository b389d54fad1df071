#!/usr/bin/env bash
# Optional system tools some tests use when present: Debian's Chromium for checking the leaderboard
# page in a real headless browser. Installed only where apt-get works as root (CI, dev machines);
# without it those tests skip with a reason and the HTML is still checked by parsing.
set -u
if command -v chromium >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "ci_extras: could not install chromium; browser checks will be skipped"
fi
exit 0
