#!/usr/bin/env bash
# Fetches the photographs the shipped model was trained on into DIR (19 photos, 13 MB):
#
#   scripts/fetch-photos.sh DIR
#
# From two packages a training machine can install, so nothing is committed to memvos:
#  - Debian's `plasma-workspace-wallpapers` (KDE Plasma's wallpapers): the 12 photographs among
#    them, licensed LGPL-3 (Volna: CC-BY-SA-4.0), as each wallpaper's metadata says;
#  - scikit-image's sample data (the `scikit-image` wheel on PyPI): 7 photos in the public
#    domain or under CC0 (astronaut, chelsea, coffee, rocket; brick, grass, gravel textures).
# DIR/SOURCES.txt lists each file with its origin, licence and SHA-256.
#
# Needs apt-get (after `apt-get update`), dpkg-deb, python3 with pip, unzip and sha256sum.
set -euo pipefail

out=${1:?usage: scripts/fetch-photos.sh DIR}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
chmod 1777 "$tmp" # apt-get download writes as its own user
mkdir -p "$out"

plasma=(BytheWater ColdRipple ColorfulCups DarkestHour EveningGlow FallenLeaf Grey Kite OneStandsOut Path Volna summer_1am)
skimage=(astronaut.png chelsea.png coffee.png rocket.jpg brick.png grass.png gravel.png)

(cd "$tmp" && apt-get download plasma-workspace-wallpapers >/dev/null)
dpkg-deb -x "$tmp"/plasma-workspace-wallpapers_*.deb "$tmp/plasma"
python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" 'scikit-image==0.26.0'
unzip -q -o "$tmp"/scikit_image-*.whl 'skimage/data/*' -d "$tmp/sk"

: >"$out/SOURCES.txt.tmp"
for name in "${plasma[@]}"; do
    dir="$tmp/plasma/usr/share/wallpapers/$name"
    # The largest rendition of the wallpaper (the others are links or smaller copies).
    src=$(ls -S "$dir"/contents/images/*.jpg | head -n 1)
    licence=$(grep -ho '"License": *"[^"]*"\|License=.*' "$dir"/metadata.* | head -n 1 | sed 's/.*[:=] *"\{0,1\}\([^"]*\)"\{0,1\}/\1/')
    cp "$src" "$out/plasma-$name.jpg"
    echo "plasma-$name.jpg  Debian plasma-workspace-wallpapers, $name  ${licence:-LGPLv3}" >>"$out/SOURCES.txt.tmp"
done
for f in "${skimage[@]}"; do
    cp "$tmp/sk/skimage/data/$f" "$out/skimage-$f"
    echo "skimage-$f  scikit-image 0.26.0 sample data  public domain / CC0" >>"$out/SOURCES.txt.tmp"
done
while read -r file rest; do
    echo "$file  $(sha256sum "$out/$file" | cut -c1-64)  $rest"
done <"$out/SOURCES.txt.tmp" >"$out/SOURCES.txt"
rm "$out/SOURCES.txt.tmp"
echo "$(wc -l <"$out/SOURCES.txt") photos in $out (sources and licences in $out/SOURCES.txt)"
