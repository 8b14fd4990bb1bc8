# Sourced by tests/e2e/run.sh and tests/gatekeeper-audit/cluster.sh in their certificate
# directory: an openssl config with CA, server and client profiles, and EC P-256 helpers that
# use it (certificates valid for 2 days).
cat >openssl.cnf <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = placeholder
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign, digitalSignature
subjectKeyIdentifier = hash
[server]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost, IP:10.0.0.1, DNS:kubernetes.default.svc
authorityKeyIdentifier = keyid
[client]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
EOF
new_ca() { # name CN
  openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -keyout "$1.key" \
    -out "$1.crt" -subj "/CN=$2" -days 2 -config openssl.cnf -extensions ca 2>/dev/null
}
new_cert() { # name subject ca extensions
  openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -keyout "$1.key" \
    -out "$1.csr" -subj "$2" -config openssl.cnf 2>/dev/null &&
    openssl x509 -req -in "$1.csr" -CA "$3.crt" -CAkey "$3.key" -CAcreateserial -out "$1.crt" \
      -days 2 -extfile openssl.cnf -extensions "$4" 2>/dev/null
}
