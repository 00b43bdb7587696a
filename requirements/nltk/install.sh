#!/bin/sh
# Lay out the NLTK data this project uses, as NLTK reads it (<DEST>/corpora/<corpus>/):
#   WordNet 3.0 from Debian's wordnet-base and wordnet-sense-index, plus `lexnames` (WordNet's
#   fixed table of its 45 lexicographer files, which Debian does not ship) from this folder;
#   NLTK's English stop-word list (for models trained with stopwords=nltk) from this folder.
#
#   sh requirements/nltk/install.sh DEST      (needs apt lists: run `apt-get update` first)
#
# One recipe for the image (the Dockerfile's nltk-data stage) and the host (scripts/setup.sh,
# DEST=/usr/local/share/nltk_data, one of NLTK's default search paths: no NLTK_DATA needed).
set -eu
dest=${1:?usage: install.sh DEST}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 0777 "$work"   # apt-get download runs as the _apt user
cd "$work"
apt-get download -qq wordnet-base wordnet-sense-index
for deb in ./*.deb; do dpkg-deb -x "$deb" "$work/root"; done
src=$work/root/usr/share/wordnet
mkdir -p "$dest/corpora/wordnet" "$dest/corpora/stopwords"
for f in adj.exc adv.exc noun.exc verb.exc cntlist.rev index.sense \
         data.adj data.adv data.noun data.verb index.adj index.adv index.noun index.verb; do
  cp "$src/$f" "$dest/corpora/wordnet/$f"
done
cp "$work/root/usr/share/doc/wordnet-base/copyright" "$dest/corpora/wordnet/LICENSE"
cp "$here/wordnet/lexnames" "$dest/corpora/wordnet/lexnames"
test "$(wc -l < "$dest/corpora/wordnet/lexnames")" -eq 45
head -n 30 "$dest/corpora/wordnet/data.adj" | grep -q 'WordNet 3.0 Copyright'
cp "$here/stopwords/english" "$here/stopwords/README" "$dest/corpora/stopwords/"
chmod -R u=rwX,go=rX "$dest"
