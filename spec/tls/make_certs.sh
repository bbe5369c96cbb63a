#!/usr/bin/env bash
# make_certs.sh OUTDIR: throwaway certificates for the TLS tests, made with the
# openssl command (EC P-256 keys: fast). Idempotent: a complete, still valid
# set in OUTDIR is kept as it is.
#
#   ca.pem, ca.key            the test CA (trust it with ca_file=)
#   other_ca.pem              a CA that signed nothing here (trusting only it fails verification)
#   server.pem, server.key    CN=localhost, subjectAltName DNS:localhost, IP:127.0.0.1, IP:::1
#   expired.pem, expired.key  the same names, valid only in 2020
#   client.pem, client.key    CN=coronet test client, extendedKeyUsage clientAuth
#   wrong.key                 a key that matches no certificate
#   garbage.pem               not PEM at all
set -euo pipefail

out=${1:?usage: make_certs.sh OUTDIR}
mkdir -p "$out"
cd "$out"

complete() {
    local f
    for f in ca.pem ca.key other_ca.pem server.pem server.key expired.pem expired.key \
             client.pem client.key wrong.key garbage.pem; do
        [[ -s $f ]] || return 1
    done
    # A set made long ago may have run out: a day of validity left at least.
    openssl x509 -checkend 86400 -noout -in server.pem >/dev/null
}
if complete; then exit 0; fi

work=$(mktemp -d "$out/.make.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

self_signed_ca() { # NAME CN
    key "$1.key"
    openssl req -x509 -new -key "$1.key" -out "$1.pem" -days 30 -subj "/CN=$2" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
}

# `openssl ca` is the one signer in OpenSSL 3.0 that takes explicit dates
# (x509 -req has only -days, and rejects negative ones).
cat > ca.cnf <<CNF
[ca]
default_ca = test_ca
[test_ca]
database = index.txt
new_certs_dir = .
certificate = ca.pem
private_key = ca.key
serial = serial
default_md = sha256
policy = any_policy
unique_subject = no
copy_extensions = none
[any_policy]
commonName = supplied
[server_ext]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,IP:127.0.0.1,IP:::1
[client_ext]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
CNF
: > index.txt
echo 1000 > serial

sign() { # NAME CN EXTENSIONS [openssl ca date options...]
    local name=$1 cn=$2 ext=$3
    shift 3
    key "$name.key"
    openssl req -new -key "$name.key" -subj "/CN=$cn" -out "$name.csr"
    openssl ca -batch -config ca.cnf -extensions "$ext" -notext -in "$name.csr" -out "$name.pem" \
        "$@" 2>/dev/null
}

self_signed_ca ca "coronet test CA"
self_signed_ca other_ca "coronet other CA"
sign server localhost server_ext -days 30
sign expired localhost server_ext -startdate 20200101000000Z -enddate 20200201000000Z
sign client "coronet test client" client_ext -days 30
key wrong.key
echo "this is not a certificate" > garbage.pem

mv ca.pem ca.key other_ca.pem server.pem server.key expired.pem expired.key \
   client.pem client.key wrong.key garbage.pem "$out/"
