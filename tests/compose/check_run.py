"""Checks one docker-compose run of the pipeline (tests/compose/compose_test.sh).

Both runs: every request the load generator published was compared, and the
results came from as many executors as were started, over all partitions.
risky: verdict FAIL (exit 1) naming shadow_error 22001 on the customer
       inserts, value_mismatch on product reads naming only price, and a
       latency_regression whose shadow plan scans orders sequentially on
       orders-by-customer; nothing on fingerprints the migration does not touch.
safe:  verdict PASS (exit 0), zero discrepancies of any kind.
"""
import argparse
import json
import sys

parser = argparse.ArgumentParser()
parser.add_argument("--migration", choices=["safe", "risky"], required=True)
parser.add_argument("--verdict-status", type=int, required=True)
parser.add_argument("--published", type=int, required=True)
parser.add_argument("--report", required=True)
parser.add_argument("--results", required=True)
parser.add_argument("--verdict-log", required=True)
parser.add_argument("--executors", type=int, required=True)
args = parser.parse_args()

report = json.load(open(args.report))
verdict_log = open(args.verdict_log).read()
failures = []


def check(condition, what):
    print(("ok: " if condition else "FAIL: ") + what)
    if not condition:
        failures.append(what)


check(args.published >= 1000, f"the load generator published {args.published} requests (>= 1000)")
check(report["compared"] == args.published,
      f"every published request compared: {report['compared']} of {args.published}")
check(report["unreadable_records"] == 0, "every mismatch and summary record decodes")

partitions_by_executor = {}
for line in open(args.results):
    if line.strip():
        result = json.loads(line)
        partitions_by_executor.setdefault(result["executor"], set()).add(result["source_partition"])
spread = {executor: sorted(partitions) for executor, partitions in partitions_by_executor.items()}
check(len(spread) == args.executors, f"results from {args.executors} executors: {spread}")
covered = set().union(*partitions_by_executor.values()) if partitions_by_executor else set()
check(covered == set(range(6)), f"all 6 partitions executed: {sorted(covered)}")


def touched_by_risky(sql):
    lowered = sql.lower()
    return (lowered.startswith("insert into customers")
            or ("from products" in lowered and "price" in lowered)
            or "from orders where customer_id" in lowered)


if args.migration == "safe":
    check(args.verdict_status == 0 and "PASS" in verdict_log, f"verdict PASS (exit {args.verdict_status})")
    check(report["discrepancies"] == 0 and not report["discrepancies_by_kind"],
          f"0 discrepancies: {report['discrepancies']} {report['discrepancies_by_kind']}")
    regressions = [f["fingerprint"] for f in report["fingerprints"] if f["latency_regression"]]
    check(not regressions, f"no latency regression: {regressions}")
else:
    check(args.verdict_status == 1 and "FAIL" in verdict_log, f"verdict FAIL (exit {args.verdict_status})")
    fingerprints = report["fingerprints"]
    inserts = [f for f in fingerprints if f["sql"].lower().startswith("insert into customers")]
    check(any(f["discrepancies"].get("shadow_error") and "22001" in f["sqlstates"] for f in inserts),
          "truncation: shadow_error with SQLSTATE 22001 on the customer inserts")
    price_reads = [f for f in fingerprints if "from products" in f["sql"].lower()
                   and f["discrepancies"].get("value_mismatch")]
    check(price_reads and all(f["columns_differ"] == ["price"] for f in price_reads),
          "price rounding: value_mismatch naming only price on product reads: "
          + str([(f["sql"][:60], f["columns_differ"]) for f in price_reads]))
    orders = [f for f in fingerprints if "from orders where customer_id" in f["sql"].lower()]
    regression = orders[0]["latency_regression"] if orders else None
    plan = (regression or {}).get("plan") or {}
    check(regression is not None and "orders" in plan.get("seq_scans", []),
          f"latency_regression on orders-by-customer with a sequential scan of orders: {plan}")
    check("22001" in verdict_log and "price" in verdict_log and "scans orders sequentially" in verdict_log,
          "the verdict's reasons name 22001, price and the sequential scan of orders")
    stray = [(f["sql"][:70], f["discrepancies"]) for f in fingerprints
             if f["discrepancies"] and not touched_by_risky(f["sql"])]
    check(not stray, f"no discrepancy on fingerprints the migration does not touch: {stray}")

print(f"compose {args.migration}: {len(failures)} failed")
sys.exit(1 if failures else 0)
