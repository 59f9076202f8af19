#!/usr/bin/env bash
# Install akamai-siem on a Wazuh manager: the binary, a private config (never overwriting one
# that exists), and the rules. Prints the ossec.conf snippet to add. Safe to run again.
#
#   sudo wazuh/install.sh [--binary PATH] [--route wodle|file] [--prefix /var/ossec]
#
# --binary   the akamai-siem binary (default: target/release/akamai-siem, then
#            target/x86_64-unknown-linux-musl/release/akamai-siem, then ./akamai-siem)
# --route    which ossec.conf snippet to print (default: wodle)
# --prefix   Wazuh's installation directory (default: /var/ossec)
set -euo pipefail
# shellcheck disable=SC2046 # $(own ...) expands to separate words on purpose

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
prefix=/var/ossec
route=wodle
binary=

die() { echo "install.sh: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary=${2:?--binary needs a path}; shift 2 ;;
    --route) route=${2:?--route needs wodle or file}; shift 2 ;;
    --prefix) prefix=${2:?--prefix needs a directory}; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) die "unknown argument $1 (try --help)" ;;
  esac
done
case "$route" in wodle|file) ;; *) die "--route must be wodle or file" ;; esac

if [ -z "$binary" ]; then
  for candidate in "$root/target/release/akamai-siem" \
                   "$root/target/x86_64-unknown-linux-musl/release/akamai-siem" \
                   "$here/akamai-siem" "./akamai-siem"; do
    if [ -x "$candidate" ]; then binary=$candidate; break; fi
  done
fi
[ -n "$binary" ] && [ -x "$binary" ] || die "no akamai-siem binary found: build it (cargo build --release) or pass --binary PATH"
[ -d "$prefix" ] || die "$prefix does not exist: is this a Wazuh manager? (or pass --prefix)"

# The wazuh group owns Wazuh's files. Ownership is set only when running as root (a test
# prefix, or a non-root dry install, keeps the caller's).
group=root
if getent group wazuh >/dev/null 2>&1; then group=wazuh; fi
own() {
  if [ "$(id -u)" -eq 0 ]; then echo "-o root -g $1"; fi
}

wodle_dir="$prefix/wodles/akamai"
rules_dir="$prefix/etc/rules"
config="$wodle_dir/akamai_config.ini"

install -d -m 0750 $(own "$group") "$wodle_dir"
install -m 0750 $(own "$group") "$binary" "$wodle_dir/akamai-siem"
echo "binary   $wodle_dir/akamai-siem ($("$wodle_dir/akamai-siem" --version))"

if [ -e "$config" ]; then
  echo "config   $config exists: left unchanged"
else
  install -m 0600 $(own root) "$root/akamai_config.ini.template" "$config"
  echo "config   $config created from the template: fill in host, config_id and the credentials"
fi
chmod 0600 "$config"

install -d -m 0770 $(own "$group") "$rules_dir"
rules="$rules_dir/akamai_rules.xml"
if [ -e "$rules" ] && ! cmp -s "$root/wazuh/akamai_rules.xml" "$rules"; then
  cp -p "$rules" "$rules.bak"
  echo "rules    $rules differed from this release: saved as $rules.bak"
fi
install -m 0660 $(own "$group") "$root/wazuh/akamai_rules.xml" "$rules"
echo "rules    $rules (ids 110000-110999)"

if [ "$route" = file ]; then
  install -d -m 0750 $(own "$group") "$prefix/logs/akamai"
  snippet="$root/wazuh/ossec-localfile.xml"
  run_hint="Schedule: cp $root/config/akamai-siem.cron /etc/cron.d/akamai-siem (or the systemd timer in config/), edit its paths."
else
  snippet="$root/wazuh/ossec-wodle.xml"
  run_hint="The wodle runs it every 5 minutes."
fi

cat <<EOF

Next:
  1. Edit $config (chmod 600 is kept), then test it by hand without touching the state:
       $wodle_dir/akamai-siem --config $config check
  2. Add this inside <ossec_config> of $prefix/etc/ossec.conf (if it is not there yet):

$(grep -v '^\s*$' "$snippet" | sed 's/^/       /')

  3. Restart: systemctl restart wazuh-manager. $run_hint
  4. Verify the rules: $prefix/bin/wazuh-logtest, then paste one line of
       $wodle_dir/akamai-siem --config $config --no-state --window 1h
EOF
