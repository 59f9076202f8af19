#!/usr/bin/env bash
# Install akamai-siem on a Wazuh manager: the binary, a private config (never overwriting one
# that exists), and the rules. Prints the ossec.conf snippet to add. Safe to run again.
# Directories that exist already (Wazuh's own) keep their owner and mode.
#
#   sudo wazuh/install.sh [--binary PATH] [--route wodle|file|syslog] [--prefix /var/ossec]
#
# --binary   the akamai-siem binary (default: $CARGO_TARGET_DIR, else target/, then
#            release/akamai-siem, x86_64-unknown-linux-musl/release/akamai-siem, ./akamai-siem)
# --route    which ossec.conf snippet to print (default: wodle; syslog: the manager's
#            <remote> listener, for akamai-siem running on another host)
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
    --route) route=${2:?--route needs wodle, file or syslog}; shift 2 ;;
    --prefix) prefix=${2:?--prefix needs a directory}; shift 2 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) die "unknown argument $1 (try --help)" ;;
  esac
done
case "$route" in wodle|file|syslog) ;; *) die "--route must be wodle, file or syslog" ;; esac

if [ -z "$binary" ]; then
  # Where cargo builds: a relative CARGO_TARGET_DIR is relative to the caller's directory, as
  # for cargo itself.
  target=${CARGO_TARGET_DIR:-$root/target}
  for candidate in "$target/release/akamai-siem" \
                   "$target/x86_64-unknown-linux-musl/release/akamai-siem" \
                   "$here/akamai-siem" "./akamai-siem"; do
    if [ -x "$candidate" ]; then binary=$candidate; break; fi
  done
fi
[ -n "$binary" ] && [ -x "$binary" ] || die "no akamai-siem binary found: build it (cargo build --release) or pass --binary PATH"
[ -d "$prefix" ] || die "$prefix does not exist: is this a Wazuh manager? (or pass --prefix)"
# Absolute: the wodle runs the command without a shell, and the printed paths are copied.
prefix=$(cd "$prefix" && pwd)

# The wazuh group owns Wazuh's files. Ownership is set only when running as root (a test
# prefix, or a non-root dry install, keeps the caller's).
group=root
if getent group wazuh >/dev/null 2>&1; then group=wazuh; fi
own() {
  if [ "$(id -u)" -eq 0 ]; then echo "-o root -g $1"; fi
}
# Creates a directory with this mode and group; one that exists is left exactly as it is:
# $prefix/etc/rules and the like belong to Wazuh, and its own upgrades set them.
new_dir() {
  local mode=$1 dir_group=$2 dir=$3
  if [ ! -d "$dir" ]; then install -d -m "$mode" $(own "$dir_group") "$dir"; fi
}

wodle_dir="$prefix/wodles/akamai"
rules_dir="$prefix/etc/rules"
config="$wodle_dir/akamai_config.ini"

new_dir 0750 "$group" "$wodle_dir"
install -m 0750 $(own "$group") "$binary" "$wodle_dir/akamai-siem"
echo "binary   $wodle_dir/akamai-siem ($("$wodle_dir/akamai-siem" --version))"

if [ -e "$config" ]; then
  echo "config   $config exists: left unchanged"
else
  install -m 0600 $(own root) "$root/akamai_config.ini.template" "$config"
  echo "config   $config created from the template: fill in host, config_id and the credentials"
fi
chmod 0600 "$config"

new_dir 0770 "$group" "$rules_dir"
rules="$rules_dir/akamai_rules.xml"
if [ -e "$rules" ] && ! cmp -s "$root/wazuh/akamai_rules.xml" "$rules"; then
  # A new name each time: an earlier backup may hold the only copy of an older local edit.
  backup="$rules.bak.$(date -u +%Y%m%dT%H%M%SZ)"
  n=1
  while [ -e "$backup" ]; do backup="$rules.bak.$(date -u +%Y%m%dT%H%M%SZ).$n"; n=$((n + 1)); done
  cp -p "$rules" "$backup"
  echo "rules    $rules differed from this release: saved as $backup"
fi
install -m 0660 $(own "$group") "$root/wazuh/akamai_rules.xml" "$rules"
echo "rules    $rules (ids 110000-110999)"

# Needed only for lines that arrive by remote syslog, harmless otherwise: it matches nothing
# but the program name akamai-siem.
decoders_dir="$prefix/etc/decoders"
new_dir 0770 "$group" "$decoders_dir"
install -m 0660 $(own "$group") "$root/wazuh/akamai_decoders.xml" "$decoders_dir/akamai_decoders.xml"
echo "decoder  $decoders_dir/akamai_decoders.xml (lines by remote syslog)"

# The shipped snippets, cron line and units name the default prefix.
at_prefix() {
  local line
  while IFS= read -r line; do printf '%s\n' "${line//\/var\/ossec/"$prefix"}"; done
}
if [ "$prefix" = /var/ossec ]; then
  adapt=
else
  adapt="
     They name /var/ossec: replace it with $prefix in the copies."
fi

if [ "$route" = file ]; then
  new_dir 0750 "$group" "$prefix/logs/akamai"
  snippet="$root/wazuh/ossec-localfile.xml"
  run_hint="Schedule it, with cron:
       cp $root/config/akamai-siem.cron /etc/cron.d/akamai-siem
     or with a systemd timer:
       cp $root/config/akamai-siem.service $root/config/akamai-siem.timer /etc/systemd/system/
       systemctl daemon-reload && systemctl enable --now akamai-siem.timer
     and rotate its files:
       cp $root/wazuh/akamai-siem.logrotate /etc/logrotate.d/akamai-siem$adapt"
elif [ "$route" = syslog ]; then
  snippet="$root/wazuh/ossec-remote-syslog.xml"
  run_hint="On the collector host, run akamai-siem from cron or a systemd timer with
       output = syslog://THIS-MANAGER:514
     in its config (see README, \"Syslog output\"), and put its address in <allowed-ips>."
else
  snippet="$root/wazuh/ossec-wodle.xml"
  run_hint="The wodle runs it every 5 minutes."
fi

cat <<EOF

Next:
  1. Edit $config (chmod 600 is kept), then test it by hand without touching the state:
       $wodle_dir/akamai-siem --config $config check
  2. Add this inside <ossec_config> of $prefix/etc/ossec.conf (if it is not there yet):

$(grep -v '^\s*$' "$snippet" | at_prefix | sed 's/^/       /')

  3. Restart: systemctl restart wazuh-manager. $run_hint
  4. Verify the rules: $prefix/bin/wazuh-logtest, then paste one line of
       $wodle_dir/akamai-siem --config $config --no-state --window 1h
EOF
