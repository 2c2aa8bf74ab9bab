// Package chaos is Démarche's standing fault suite (issue 9, item 8). Its
// test, TestChaos, builds the demarche binary from this repository, runs
// `demarche dev` as a child process on a data folder (the worker and the
// audit service as their own `demarche serve` processes), drives drills and
// people-driven crises through the gateway with the dev identities' tokens,
// and meanwhile injects faults chosen by a seeded plan:
//
//   - kill -9 of the worker, restarted;
//   - kill -9 of the whole stack (`demarche dev`, sometimes with the worker and
//     audit), restarted on the same data folder;
//   - NATS restarted (SIGUSR1 to `demarche dev`) during a burst of new drills;
//   - the audit service down for a while, then catching up;
//   - duplicated, late-duplicated, reordered and poison events published on
//     the crisis stream with the worker's credentials (the one identity that
//     may publish there: a retried activity, a faulty network or a buggy
//     worker, not an outsider, whom NATS refuses).
//
// It then checks outcomes only through public interfaces (the gateway, the
// NATS streams, `demarche audit verify`): every crisis closes or keeps its
// state; the crisis stream holds every event of each crisis once by ce-id;
// every audit chain verifies and holds each event once; every disbursement is
// paid once in the ledger; consumers drain; every dead letter is accounted
// for: poison by every consumer, the reordered synthetic crisis's events
// (which carry no workflow origin) by the audit service alone, refused as
// forged with an alarm, and no genuine event by any. It
// prints a figures table and fails on any loss or double payment.
//
// Size: DEMARCHE_CHAOS_SIZE=small (default, inside make test) or full
// (make chaos). Seed: DEMARCHE_CHAOS_SEED=N repeats a run's fault plan (the
// timing of a real stack under faults is not reproducible, the plan is).
// DEMARCHE_CHAOS_BIN uses a prebuilt binary instead of building one;
// DEMARCHE_CHAOS_SABOTAGE=1 hides injected duplicates from the checks, so the
// run must fail (a check of the checks).
package chaos
