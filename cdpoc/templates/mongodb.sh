#!/bin/bash
# User data of the MongoDB instance: MongoDB 8.0 for Amazon Linux 2023, seeded for s3upload.
#
# cdpoc renders this file with string.Template (a placeholder is two at signs and a name in
# braces) from the stack's declaration: it holds names only. The passwords are read from SSM
# Parameter Store SecureStrings through the instance profile at boot and reach mongosh through
# its environment, never its command line, a file or the log. In order:
#   1. install mongod and mongosh from MongoDB's repository; mount the data volume (a new, empty one
#      is formatted first; one cdpoc made from a kept snapshot holds the data of an earlier stack) at
#      mongod's dbPath, then start mongod
#   2. on localhost only, without authorization yet: create the s3upload database's collections
#      fileTypes, files and origins, seed the two file types and the web page's origin, create the
#      users admin (admin database) and s3upload (readWrite on s3upload)
#   3. bind to localhost and the private address, turn authorization on, restart, and check that
#      the application user can log in over the private address
# Every step converges, so a second run (after a failure) finishes the job; network steps retry.
set -euo pipefail

readonly STACK='@@{stack}'
readonly ADMIN_PASSWORD_PARAMETER='@@{admin_password_parameter}'
readonly APP_PASSWORD_PARAMETER='@@{app_password_parameter}'
readonly IMDS=http://169.254.169.254
readonly MONGOD_CONF=/etc/mongod.conf
readonly DATA_DEVICE='@@{data_device}'
# The dbPath of the mongodb-org packages' /etc/mongod.conf.
readonly DB_PATH=/var/lib/mongo
readonly STATE_DIR=/var/lib/cdpoc
readonly SEED_DATA="$STATE_DIR/mongodb-seed.json"
readonly SEED_SCRIPT="$STATE_DIR/mongodb-seed.js"
readonly DONE_MARKER="$STATE_DIR/mongodb-configured"

# Read in main; never passed as arguments, because retry logs the command line it gives up on.
admin_password=""
app_password=""

# Log lines go to stderr, so that functions whose output is captured stay clean; cloud-init
# keeps both streams in /var/log/cloud-init-output.log.
log() {
    printf '%s cdpoc-user-data: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2
}

# retry ATTEMPTS COMMAND [ARG...]: run COMMAND until it succeeds, backing off from 5 s to 60 s.
retry() {
    local attempts=$1 delay=5 attempt=1
    shift
    until "$@"; do
        if ((attempt >= attempts)); then
            log "giving up after ${attempt} attempts: $*"
            return 1
        fi
        log "attempt ${attempt} of ${attempts} failed, retrying in ${delay}s: $*"
        sleep "$delay"
        attempt=$((attempt + 1))
        delay=$((delay * 2 > 60 ? 60 : delay * 2))
    done
}

# IMDSv2 only (RunInstances requires tokens): a session token first, then the metadata.
imds_token() {
    curl -fsS --max-time 5 -X PUT "$IMDS/latest/api/token" -H 'X-aws-ec2-metadata-token-ttl-seconds: 900'
}

imds() {
    curl -fsS --max-time 5 -H "X-aws-ec2-metadata-token: $1" "$IMDS/latest/meta-data/$2"
}

# The instance profile can take a moment to be usable, and the parameter to be readable: retried.
read_secret() {
    aws ssm get-parameter --region "$1" --name "$2" --with-decryption --query Parameter.Value --output text
}

install_mongodb() {
    cat >/etc/yum.repos.d/mongodb-org-8.0.repo <<'REPO'
[mongodb-org-8.0]
name=MongoDB 8.0 Repository
baseurl=https://repo.mongodb.org/yum/amazon/2023/mongodb-org/8.0/$basearch/
gpgcheck=1
enabled=1
gpgkey=https://pgp.mongodb.com/server-8.0.asc
REPO
    # The server alone, and the mongosh build that uses the system's OpenSSL 3: the default
    # mongosh bundles its own OpenSSL, which rejects Amazon Linux 2023's OpenSSL configuration.
    retry 10 dnf install -y mongodb-org-server mongodb-mongosh-shared-openssl3
}

# The data volume's block device. On Nitro instances EBS volumes are NVMe devices, which Amazon
# Linux's udev rules also name as in the block device mapping (/dev/sdf); Xen types call it /dev/xvdf.
data_device() {
    local name
    for name in "$DATA_DEVICE" "/dev/xvd${DATA_DEVICE#/dev/sd}"; do
        if [[ -b "$name" ]]; then
            readlink -f "$name"
            return 0
        fi
    done
    return 1
}

mount_data_volume() {
    local device uuid
    device="$(retry 20 data_device)"
    # Only a volume without a file system is formatted: one made from a snapshot keeps its data.
    if ! blkid -p "$device" >/dev/null; then
        log "formatting the new data volume $device"
        mkfs.xfs -q "$device"
    fi
    uuid="$(blkid -s UUID -o value "$device")"
    mkdir -p "$DB_PATH"
    if ! grep -q "^UUID=$uuid " /etc/fstab; then
        printf 'UUID=%s %s xfs defaults,nofail 0 2\n' "$uuid" "$DB_PATH" >>/etc/fstab
    fi
    if ! mountpoint -q "$DB_PATH"; then
        mount "$DB_PATH"
    fi
    # Restored data belongs to whatever ids the old instance gave mongod; a new mount point lacks
    # the SELinux label the package gave the directory.
    chown -R mongod:mongod "$DB_PATH"
    if command -v restorecon >/dev/null; then
        restorecon -R "$DB_PATH"
    fi
}

write_seed() {
    mkdir -p "$STATE_DIR"
    chmod 0700 "$STATE_DIR"
    cat >"$SEED_DATA" <<'SEED'
{
  "database": "s3upload",
  "collections": ["fileTypes", "files", "origins"],
  "fileTypes": [
    {
      "type": "book",
      "text": "Books",
      "help": "Books must be in PDF format. Max file size is 1MB.",
      "extensions": ["pdf"],
      "mimetypes": ["application/pdf"],
      "bucket": "@@{uploads_bucket}",
      "path": "books",
      "maxBytes": 1048576
    },
    {
      "type": "image",
      "text": "Images",
      "help": "Images must be in JPG, JPEG, PNG, or GIF format. Max file size is 1MB.",
      "extensions": ["jpg", "jpeg", "png", "gif"],
      "mimetypes": ["image/jpeg", "image/png", "image/gif"],
      "bucket": "@@{uploads_bucket}",
      "path": "files/images",
      "maxBytes": 1048576
    }
  ],
  "origins": ["@@{web_origin}"]
}
SEED
    # Upserts and user updates, so running it again converges instead of failing on duplicates.
    cat >"$SEED_SCRIPT" <<'MONGOSH'
const seed = JSON.parse(require("fs").readFileSync(process.env.SEED_DATA, "utf8"));
const admin = db.getSiblingDB("admin");
if (process.env.MONGO_AUTH === "yes") {
  admin.auth("admin", process.env.ADMIN_PASSWORD);
}
const app = db.getSiblingDB(seed.database);
const existing = app.getCollectionNames();
for (const name of seed.collections) {
  if (!existing.includes(name)) {
    app.createCollection(name);
  }
}
for (const fileType of seed.fileTypes) {
  app.fileTypes.updateOne({ type: fileType.type }, { $set: fileType }, { upsert: true });
}
for (const origin of seed.origins) {
  app.origins.updateOne({ origin: origin }, { $set: { origin: origin } }, { upsert: true });
}
const adminRoles = [{ role: "userAdminAnyDatabase", db: "admin" }, { role: "readWriteAnyDatabase", db: "admin" }];
if (admin.getUser("admin")) {
  admin.updateUser("admin", { pwd: process.env.ADMIN_PASSWORD, roles: adminRoles });
} else {
  admin.createUser({ user: "admin", pwd: process.env.ADMIN_PASSWORD, roles: adminRoles });
}
const appRoles = [{ role: "readWrite", db: seed.database }];
if (app.getUser("s3upload")) {
  app.updateUser("s3upload", { pwd: process.env.APP_PASSWORD, roles: appRoles });
} else {
  app.createUser({ user: "s3upload", pwd: process.env.APP_PASSWORD, roles: appRoles });
}
print("seeded " + seed.database + ": " + seed.fileTypes.length + " file types, " + seed.origins.length + " origin(s), 2 users");
MONGOSH
}

authorization_enabled() {
    grep -q '^security:' "$MONGOD_CONF"
}

mongod_answers() {
    mongosh --quiet --eval 'db.runCommand({ ping: 1 }).ok' >/dev/null
}

run_seed() {
    local auth=no
    if authorization_enabled; then
        auth=yes
    fi
    SEED_DATA="$SEED_DATA" MONGO_AUTH="$auth" ADMIN_PASSWORD="$admin_password" APP_PASSWORD="$app_password" \
        mongosh --quiet --file "$SEED_SCRIPT"
}

secure_mongod() {
    local private_ip=$1
    # Listen beyond localhost only together with authorization: never open without it.
    sed -i -E "s/^([[:space:]]*)bindIp:.*/\1bindIp: 127.0.0.1,${private_ip}/" "$MONGOD_CONF"
    if ! authorization_enabled; then
        printf 'security:\n  authorization: enabled\n' >>"$MONGOD_CONF"
    fi
    systemctl restart mongod
}

app_user_logs_in() {
    APP_PASSWORD="$app_password" mongosh --quiet --host "$1" \
        --eval 'db.getSiblingDB("s3upload").auth("s3upload", process.env.APP_PASSWORD).ok' >/dev/null
}

main() {
    local token region private_ip
    if [[ -f "$DONE_MARKER" ]]; then
        log "MongoDB of stack $STACK is already configured"
        return 0
    fi
    log "configuring MongoDB for stack $STACK"
    token="$(retry 10 imds_token)"
    region="$(retry 10 imds "$token" placement/region)"
    private_ip="$(retry 10 imds "$token" local-ipv4)"
    install_mongodb
    mount_data_volume
    systemctl enable --now mongod
    retry 20 mongod_answers
    admin_password="$(retry 20 read_secret "$region" "$ADMIN_PASSWORD_PARAMETER")"
    app_password="$(retry 20 read_secret "$region" "$APP_PASSWORD_PARAMETER")"
    write_seed
    run_seed
    secure_mongod "$private_ip"
    retry 20 app_user_logs_in "$private_ip"
    touch "$DONE_MARKER"
    log "MongoDB is listening on ${private_ip}:27017 with authorization enabled"
}

main "$@"
