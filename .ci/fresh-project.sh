#!/usr/bin/env bash
# The packages as a user gets them: each publishable package packed (pnpm pack), the tarballs checked
# (LICENSE, README, metadata, no source maps), installed with npm into a fresh project outside the
# workspace, the README's Quick start and a driver compiled with tsc under strict, then run against a
# Mosquitto that the packed testkit starts; and `holdfast --version` from the packed CLI.
# Needs mosquitto and the npm registry. Leaves nothing behind.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
here="$root/.ci/fresh-project"
work="$(mktemp -d "${TMPDIR:-/tmp}/holdfast-fresh-project-XXXXXX")"
trap 'rm -rf "$work"' EXIT

cd "$root"
pnpm build >/dev/null
mkdir "$work/tarballs"
packages=(holdfast cli testkit)
for pkg in "${packages[@]}"; do
  (cd "packages/$pkg" && pnpm pack --pack-destination "$work/tarballs" >/dev/null)
done

for tarball in "$work"/tarballs/*.tgz; do
  files="$(tar -tzf "$tarball")"
  for required in package/LICENSE package/README.md package/package.json; do
    grep -qx "$required" <<<"$files" || { echo "$(basename "$tarball"): $required missing" >&2; exit 1; }
  done
  if grep -q '\.map$' <<<"$files"; then echo "$(basename "$tarball"): ships source maps without their sources" >&2; exit 1; fi
  tar -xzOf "$tarball" package/LICENSE | cmp -s - LICENSE || { echo "$(basename "$tarball"): LICENSE differs from the repository's" >&2; exit 1; }
  tar -xzOf "$tarball" package/package.json | node -e '
    const m = JSON.parse(require("fs").readFileSync(0, "utf8"));
    const missing = ["name", "version", "description", "license", "keywords", "homepage", "repository", "engines", "files"].filter((k) => m[k] === undefined);
    const specs = Object.values({ ...m.dependencies, ...m.peerDependencies }).filter((v) => /^(workspace|catalog):/.test(v));
    if (missing.length || specs.length || m.license !== "MIT" || !m.engines.node) { console.error(`${m.name}: missing ${missing} / unresolved ${specs}`); process.exit(1); }'
done
# The package README carries the same Quick start as the repository's.
tar -xzOf "$work"/tarballs/holdfast-[0-9]*.tgz package/README.md >"$work/package-readme.md"
diff <(node "$here/adapt-quickstart.mjs" README.md) <(node "$here/adapt-quickstart.mjs" "$work/package-readme.md") >/dev/null \
  || { echo "packages/holdfast/README.md's Quick start differs from README.md's" >&2; exit 1; }

app="$work/app"
mkdir "$app"
catalog() {
  local version
  version="$(sed -n "s|^  '\{0,1\}$1'\{0,1\}: ||p" pnpm-workspace.yaml)"
  [ -n "$version" ] || { echo "no $1 in pnpm-workspace.yaml's catalog" >&2; exit 1; }
  echo "$version"
}
tarball() { ls "$work"/tarballs/$1-[0-9]*.tgz; }
cat >"$app/package.json" <<JSON
{
  "name": "fresh-project",
  "private": true,
  "type": "module",
  "dependencies": {
    "holdfast": "file:$(tarball holdfast)",
    "@holdfast/testkit": "file:$(tarball holdfast-testkit)",
    "@holdfast/cli": "file:$(tarball holdfast-cli)",
    "typescript": "$(catalog typescript)",
    "@types/node": "$(catalog @types/node)"
  },
  "overrides": { "holdfast": "\$holdfast", "@holdfast/testkit": "\$@holdfast/testkit" }
}
JSON
cp "$here/tsconfig.json" "$here/driver.ts" "$app/"
node "$here/adapt-quickstart.mjs" "$work/package-readme.md" >"$app/quickstart.ts"
cd "$app"
npm install --no-audit --no-fund --loglevel=error
npx tsc --noEmit -p .
npx tsc -p .
version="$(npx holdfast --version)"
[ "$version" = "$(node -p 'require("./node_modules/@holdfast/cli/package.json").version')" ] || { echo "holdfast --version printed '$version'" >&2; exit 1; }
node out/driver.js
echo "fresh project: packed tarballs install, type-check under strict, and the Quick start delivers (holdfast $version)"
