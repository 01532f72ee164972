#!/usr/bin/env bash
# Remake the seed corpora of the storage-side fuzz targets (tests/fuzz/corpus/
# fuzz_lz4, fuzz_layout, fuzz_s3_xml, fuzz_abs_xml, fuzz_age, fuzz_url) from real
# programs: Litestream 0.3.13 and litesafe replicating small databases, the
# `age` command, and the test S3 / Azure servers (tests/servers/testservers.py).
#   tests/fuzz/seeds_store.sh WORKDIR
# Needs build/litesafe (make build), sqlite3, age, age-keygen, curl, openssl and
# the npm test tools (scripts/deps.sh). The age seeds use WORKDIR/fuzz-id.txt:
# if it is new, paste its secret key into FUZZ_IDENTITY of fuzz_age.c. Existing
# seeds are overwritten, regress-* seeds are kept.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mkdir -p "$1" && cd "$1" && pwd)
corpus=$here/tests/fuzz/corpus
litestream=$here/tests/tools/node_modules/@flydotio/litestream-linux-x64/litestream
litesafe=$here/build/litesafe
cd "$work"

# 1. Replicas of two small databases (page_size 512), a few commits each.
commits() { for i in 1 2 3 4 5; do for db in "$@"; do
    sqlite3 "$db" "INSERT INTO t VALUES($i, printf('%.*c', $i*40, 'x'));
                   INSERT INTO t SELECT a+1, b FROM t LIMIT 3;"; done; sleep 1.5; done; }
for who in lt ls ag; do
    rm -rf "$who.db" "$who.db-wal" "$who.db-shm" "$who-rep"
    sqlite3 "$who.db" "PRAGMA page_size=512; PRAGMA journal_mode=WAL; CREATE TABLE t(a,b);
                       INSERT INTO t VALUES(1,'hello');" >/dev/null
done
[ -f fuzz-id.txt ] || age-keygen -o fuzz-id.txt 2>/dev/null
[ -f other-id.txt ] || age-keygen -o other-id.txt 2>/dev/null
printf 'dbs:\n  - path: %s\n    replicas:\n      - url: file://%s\n        age:\n          identity-files: [%s]\n' \
    "$work/ag.db" "$work/ag-rep" "$work/fuzz-id.txt" >ag.yml
"$litestream" replicate lt.db "file://$work/lt-rep" >lt.log 2>&1 & p1=$!
"$litesafe" replicate ls.db "file://$work/ls-rep" >ls.log 2>&1 & p2=$!
"$litesafe" replicate -config ag.yml >ag.log 2>&1 & p3=$!
sleep 2; commits lt.db ls.db ag.db; sleep 2
kill $p1 $p2 $p3; wait $p1 $p2 $p3 || true

# 2. fuzz_lz4: the objects; fuzz_layout: the key lists.
mkdir -p "$corpus/fuzz_lz4" "$corpus/fuzz_layout"
for who in lt ls; do
    for f in $(find "$who-rep" -name '*.lz4'); do cp "$f" "$corpus/fuzz_lz4/$who-$(basename "$f")"; done
    (cd "$who-rep" && find generations -type f | sort) >"$corpus/fuzz_layout/$who-keys"
done
(cat "$corpus/fuzz_layout/lt-keys" "$corpus/fuzz_layout/ls-keys"
 echo "$(head -1 "$corpus/fuzz_layout/lt-keys").tmp"; echo README) >"$corpus/fuzz_layout/both-keys"

# 3. fuzz_age: age-encrypted objects and key files.
a=$corpus/fuzz_age; mkdir -p "$a"
r=$(age-keygen -y fuzz-id.txt); r2=$(age-keygen -y other-id.txt)
printf 'hello' | age -r "$r" >"$a/age-small.age"
: | age -r "$r" >"$a/age-empty.age"
head -c 65540 /dev/urandom | age -r "$r" >"$a/age-two-chunks.age"
printf 'hello' | age -a -r "$r" >"$a/age-armored.age"
age -r "$r" <"$(find ls-rep -name '*.wal.lz4' | sort | sed -n 3p)" >"$a/age-ls-segment.age"
age -r "$r" -r "$r2" <"$(find lt-rep -name '*.snapshot.lz4' | head -1)" >"$a/age-two-recipients.age"
age -r "$r2" <"$(find lt-rep -name '*.wal.lz4' | sort | sed -n 2p)" >"$a/age-other-recipient.age"
n=0; for f in $(find ag-rep -type f | sort); do n=$((n + 1)); cp "$f" "$a/ls-encrypted-$n-$(basename "$f")"; done
cp fuzz-id.txt "$a/keys-identity.txt"; printf '# recipients\n%s\n\n%s\n' "$r" "$r2" >"$a/keys-recipients.txt"

# 4. fuzz_url: the URLs of the docs and tests, one per file.
u=$corpus/fuzz_url; mkdir -p "$u"; i=0
(cd "$here" && grep -rhoE "(s3|gs|gcs|abs|sftp|file)://[^\"' )\`<>,]*" README.md docs tests/integration tests/unit) |
    sed 's/\\n$//' | grep -v '[%$]s\|\${\|\$[A-Z]' | sort -u | while IFS= read -r url; do
    i=$((i + 1)); printf '%s' "$url" >"$u/url-$(printf %03d $i)"; done
printf '%s' 'C:\backups\db' >"$u/path-windows"; printf '%s' '/var/lib/app/db' >"$u/path-bare"
printf '%s' 'sftp://[::1]:2222/backups' >"$u/sftp-v6"

# 5. fuzz_s3_xml and fuzz_abs_xml: replies of the test servers.
python3 "$here/tests/servers/testservers.py" start "$work/srv" >/dev/null
trap 'python3 "$here/tests/servers/testservers.py" stop "$work/srv" >/dev/null' EXIT
set -a; . "$work/srv/servers.env"; set +a
s=$corpus/fuzz_s3_xml; mkdir -p "$s"
e=$LS_TEST_S3_ENDPOINT/$LS_TEST_S3_BUCKET
empty=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
s3() { local user=$1 sha=$2; shift 2
       curl -s --aws-sigv4 aws:amz:us-east-1:s3 --user "$user" -H "x-amz-content-sha256: $sha" "$@"; }
k=S3RVER:S3RVER
for f in $(cd lt-rep && find generations -type f | head -4); do
    s3 $k "$(sha256sum "lt-rep/$f" | cut -d' ' -f1)" -T "lt-rep/$f" "$e/fz/db%201%26x/$f" -o /dev/null
done
s3 $k $empty "$e?list-type=2&prefix=fz%2F" -o "$s/list-several.xml"
s3 $k $empty "$e?list-type=2&prefix=nothing-here%2F" -o "$s/list-empty.xml"
s3 $k $empty "$e?list-type=2&max-keys=2&prefix=fz%2F" -o "$s/list-truncated.xml"
s3 $k $empty "$LS_TEST_S3_ENDPOINT/no-such-bucket-fz?list-type=2" -o "$s/err-nosuchbucket.xml"
s3 S3RVER:wrongsecret $empty "$e?list-type=2" -o "$s/err-signature.xml"
s3 NOKEY:wrong $empty "$e?list-type=2" -o "$s/err-accesskey.xml"
s3 $k $empty "$e/fz/nope" -o "$s/err-nosuchkey.xml"
s3 $k $empty -X POST "$e/fz/mp?uploads=" -o "$s/multipart-create.xml"
body='<?xml version="1.0" encoding="UTF-8"?><Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Object><Key>fz/db 1&amp;x/generations/x</Key></Object><Object><Key>fz/missing</Key></Object></Delete>'
s3 $k "$(printf '%s' "$body" | sha256sum | cut -d' ' -f1)" -X POST \
    -H "Content-MD5: $(printf '%s' "$body" | openssl md5 -binary | base64)" \
    -H "Content-Type: application/xml" --data-binary "$body" "$e?delete=" -o "$s/delete-result.xml"

mkdir -p "$corpus/fuzz_abs_xml"
python3 - "$work/srv/servers.env" "$corpus/fuzz_abs_xml" ls-rep <<'EOF'
# SharedKey-signed requests to Azurite; each reply body saved as a seed.
import base64, email.utils, hashlib, hmac, os, sys, urllib.error, urllib.parse, urllib.request
env = dict(l.strip().split("=", 1) for l in open(sys.argv[1]) if "=" in l)
ep, acct, key = env["LS_TEST_ABS_ENDPOINT"], env["LS_TEST_ABS_ACCOUNT"], env["LS_TEST_ABS_KEY"]
cont, out, base = env["LS_TEST_ABS_CONTAINER"], sys.argv[2], sys.argv[3]
epath = urllib.parse.urlparse(ep).path

def call(method, path, query=(), body=b"", extra=None, k=key, ct=""):
    hdrs = {"x-ms-date": email.utils.formatdate(usegmt=True), "x-ms-version": "2021-08-06"}
    hdrs.update(extra or {})
    q = sorted(query)
    sts = "%s\n\n\n%s\n\n%s\n\n\n\n\n\n\n" % (method, len(body) if body else "", ct)
    sts += "".join("%s:%s\n" % hv for hv in sorted(hdrs.items()))
    sts += "/%s%s%s" % (acct, epath, urllib.parse.quote(path))
    sts += "".join("\n%s:%s" % (a.lower(), b) for a, b in q)
    mac = hmac.new(base64.b64decode(k), sts.encode(), hashlib.sha256).digest()
    hdrs["Authorization"] = "SharedKey %s:%s" % (acct, base64.b64encode(mac).decode())
    if ct:
        hdrs["Content-Type"] = ct
    url = ep + urllib.parse.quote(path) + ("?" + urllib.parse.urlencode(q) if q else "")
    req = urllib.request.Request(url, data=body if method == "PUT" else None, method=method,
                                 headers=hdrs)
    try:
        with urllib.request.urlopen(req) as r:
            return r.read()
    except urllib.error.HTTPError as e:
        return e.read()

def save(name, body):
    with open(os.path.join(out, name), "wb") as f:
        f.write(body)

for dp, _, fs in os.walk(base):
    for f in sorted(fs):
        rel = os.path.relpath(os.path.join(dp, f), base)
        with open(os.path.join(dp, f), "rb") as fh:
            call("PUT", "/%s/fz/db &x/%s" % (cont, rel), body=fh.read(),
                 extra={"x-ms-blob-type": "BlockBlob"}, ct="application/octet-stream")
lq = [("restype", "container"), ("comp", "list")]
save("list-several.xml", call("GET", "/" + cont, lq + [("prefix", "fz/")]))
save("list-empty.xml", call("GET", "/" + cont, lq + [("prefix", "nothing-here/")]))
save("list-nextmarker.xml", call("GET", "/" + cont, lq + [("prefix", "fz/"), ("maxresults", "2")]))
save("err-containernotfound.xml", call("GET", "/no-such-container-fz", lq))
save("err-authfailed.xml", call("GET", "/" + cont, lq,
                                k=base64.b64encode(b"wrong key, 32 bytes of it......").decode()))
save("err-blobnotfound.xml", call("GET", "/%s/fz/nope" % cont))
EOF
echo "seeds written under $corpus"
