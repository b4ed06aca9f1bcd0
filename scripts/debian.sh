# Shared by the scripts that build an image root from Debian packages (scripts/image, scripts/nginx-image);
# sourced, not run. The sourcing script defines log().

# mmdebstrap builds the root, pigz compresses its layer (scripts/images.py layer).
ensure_tools() {
  local missing=() tool
  for tool in mmdebstrap pigz; do command -v "$tool" >/dev/null || missing+=("$tool"); done
  [ "${#missing[@]}" = 0 ] && return 0
  log "installing ${missing[*]} (Debian packages)"
  apt-cache show "${missing[@]}" >/dev/null 2>&1 || apt-get update -qq
  # Another install may hold dpkg's lock for a while (the real node's packages, the test tools): wait for it.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=600 --no-install-recommends \
    "${missing[@]}" >/dev/null
}

# The machine's own apt sources (deb822 or one-line), handed to mmdebstrap on stdin: the image comes from
# the mirror this machine already trusts, and no host name is written here.
apt_sources() {
  local file
  for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -f "$file" ] || continue
    if [[ "$file" == *.sources ]]; then cat "$file"; echo; else grep -E '^\s*deb\s' "$file" || true; fi
  done
}
