#!/usr/bin/env bash
# DynamoDB round trips per $connect, join and signal, counted on the wire
# (a counting interceptor on the SDK client, against moto): prints the
# operations each step sends. The same test asserts a signal to an attached
# peer costs two (UpdateItem of the sender's connection, which takes the
# message from its socket's budget and reads it back, then GetItem of the
# room). Each line also shows the capacity the step consumes, estimated from
# the items on the wire by DynamoDB's documented rules (moto answers
# ReturnConsumedCapacity with fixed figures): strongly consistent reads, a
# read unit per 4 KB; writes, a write unit per 1 KB; transactions twice.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo test -q -p tincan-functions --locked --test a_signal_costs_at_most_two_dynamodb_round_trips \
  -- --nocapture --test-threads 1 2>&1 | grep -E "joins:|^signal [0-9]|drops:|resumes:|detached bob|racing" || true
