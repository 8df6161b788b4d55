#!/bin/sh
# Starts the relay in the foreground as PID 1 (`postfix start-fg`: the master in init mode).
#   POSTFIX_HOSTNAME             its name in the banner and Received: headers
#   POSTFIX_RELAYHOST            where all mail goes, e.g. [smtp.provider.example]:587
#   POSTFIX_RELAY_PASSWORD_FILE  optional: "[smtp.provider.example]:587 user:password"
set -eu
postconf -e "myhostname=${POSTFIX_HOSTNAME:-relay.example.org}" \
    "relayhost=${POSTFIX_RELAYHOST:?set POSTFIX_RELAYHOST, e.g. [smtp.provider.example]:587}"
if [ -n "${POSTFIX_RELAY_PASSWORD_FILE:-}" ]; then
    install -m 0600 "$POSTFIX_RELAY_PASSWORD_FILE" /etc/postfix/sasl_passwd
    postmap /etc/postfix/sasl_passwd
    postconf -e smtp_sasl_auth_enable=yes "smtp_sasl_password_maps=hash:/etc/postfix/sasl_passwd"
fi
# The workers run as another user in another container: the log must be readable by them
# (postlogd appends to an existing file and keeps its mode).
mkdir -p /var/log/postfix
touch /var/log/postfix/maillog
chmod 0644 /var/log/postfix/maillog
postfix check
exec postfix start-fg
