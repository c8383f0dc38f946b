#!/usr/bin/env bash
# Give a charity's advocacy instance its own RabbitMQ user, allowed no more than its part of the platform:
#   - configure: only its own queues advocacy.<id>, advocacy.<id>.retry, advocacy.<id>.parking,
#                advocacy.<id>.holding (where its worker moves messages it holds through an outage);
#   - read:      only its own queues (and binding them to the platform's exchanges),
#                and on the `referrals` topic exchange only the routing keys addressed to it
#                (`<event>.<id>`: topic permissions, so it cannot bind to another provider's events);
#   - write:     the `referrals` exchange, with the routing keys of a provider's events (never intake's);
#                the retry, requeue and parking exchanges only with its own queue's key (and the retry
#                exchange with its holding queue's); its own queues. So no charity can put a message on
#                another queue's requeue path, where a replay's original user_id header is believed.
# The routing keys come from the event catalogue (contracts/events.py, by `python -m
# contracts.permissions`), so a provider event added there is allowed here with no edit.
# RabbitMQ stamps and validates `user_id`, so intake knows which provider really sent an answer.
# https://www.rabbitmq.com/docs/access-control  https://www.rabbitmq.com/docs/access-control#topic-authorisation
#
# usage: deploy/rabbitmq/add-provider.sh <provider-id>
#   PROVIDER_AMQP_PASSWORD  the user's password (default: a new random one, printed once)
#   RABBITMQ_VHOST          the platform's vhost (default /)
#   RABBITMQCTL             how to reach rabbitmqctl (default rabbitmqctl; with compose, its env files too:
#                           RABBITMQCTL="docker compose --env-file .env --env-file deploy/compose/dev.env
#                           exec -T rabbitmq rabbitmqctl", or a deployment's own env file for dev.env)
#   AMQP_HOST               host:port printed in the instance's AMQP_URL (default localhost:5672)
#   CATALOGUE_PYTHON        a Python with the project installed (default: the checkout's .venv, else python3)
set -euo pipefail

die() { printf 'add-provider: %s\n' "$*" >&2; exit 1; }

[[ $# -eq 1 ]] || die "usage: $0 <provider-id>   (e.g. $0 north-west-charity)"
id=$1
[[ $id =~ ^[a-z0-9][a-z0-9-]{1,62}$ ]] || die "provider id '$id' must be 2-63 lower-case letters, digits and hyphens"

vhost=${RABBITMQ_VHOST:-/}
ctl=${RABBITMQCTL:-rabbitmqctl}
user="advocacy-$id"
password=${PROVIDER_AMQP_PASSWORD:-$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')}
queue="advocacy\\.$id"

run() { $ctl -q "$@"; }

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
python=${CATALOGUE_PYTHON:-$root/.venv/bin/python}
[[ -x $python ]] || python=python3
if ! keys=$(cd "$root" && PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" "$python" -m contracts.permissions "$id"); then
  die "could not read the event catalogue with $python: run 'make venv' first, or set CATALOGUE_PYTHON to a Python with the project installed"
fi
{ read -r publish_keys; read -r bind_keys; } <<<"$keys"

if run list_users | awk '{print $1}' | grep -qx -- "$user"; then
  run change_password "$user" "$password" >/dev/null
  echo "updated the password of $user"
else
  run add_user "$user" "$password" >/dev/null
  echo "created broker user $user"
fi

exchanges="referrals|referrals\\.dlx|referrals\\.requeue|referrals\\.parked"
run set_permissions -p "$vhost" "$user" \
  "^$queue(\\.retry|\\.parking|\\.holding)?\$" \
  "^($exchanges|$queue(\\.retry|\\.parking|\\.holding)?)\$" \
  "^($exchanges|$queue(\\.retry|\\.parking|\\.holding)?)\$" >/dev/null

# Topic permissions: which routing keys it may publish (write) and bind (read) on each topic exchange.
run set_topic_permissions -p "$vhost" "$user" referrals "$publish_keys" "$bind_keys" >/dev/null
for exchange in referrals.requeue referrals.parked; do
  run set_topic_permissions -p "$vhost" "$user" "$exchange" "^$queue\$" "^$queue\$" >/dev/null
done
# The retry exchange also routes its holding queue (shared.messaging.topology).
run set_topic_permissions -p "$vhost" "$user" referrals.dlx "^$queue(\\.holding)?\$" "^$queue(\\.holding)?\$" >/dev/null

enc_vhost=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$vhost")
echo "permissions set on vhost $vhost"
echo
echo "Start the charity's instance with:"
echo "  AMQP_URL='amqp://$user:$password@${AMQP_HOST:-localhost:5672}/$enc_vhost' AMQP_DECLARE_EXCHANGES=false \\"
echo "  PROVIDER_ID=$id PORT=<port> AUTO_ACCEPT=<true|false> make advocacy"
