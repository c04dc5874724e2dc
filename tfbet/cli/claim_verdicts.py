"""The words of a claim's verdict: one rate's two metrics joined, then the rates joined.

A verdict is text (holds, reversed, not resolved, split, mixed and their qualified forms); the
summary of the report sorts claims by how their verdict starts (:data:`SUMMARY_CATEGORIES`).
"""

# The noise sources of tfbet.paired as the verdicts name them.
NOISE_NAMES = {"chips": "chip", "test set": "test-set", "seeds": "seed"}

# The summary's categories, in its order: a claim is listed under the first one its verdict
# starts with (so the qualified "holds on ..." come before plain "holds").
SUMMARY_CATEGORIES = ("holds on RErr only", "holds on the drop only", "holds",
                      "reversed on RErr only", "reversed on the drop only", "reversed",
                      "does not hold", "split", "mixed", "not resolved", "not informative")

# combined_verdict's answers when RErr and the drop point opposite ways. RErr is what the
# paper reports; the drop says whether a difference in RErr is robustness or only clean accuracy.
_SPLIT = {
    ("reversed", "holds"): "split (A loses less to bit errors but its RErr is higher: "
                           "clean accuracy decides)",
    ("holds", "reversed"): "split (A's RErr is lower only through clean accuracy: it loses "
                           "more to bit errors)",
}


def not_resolved(limited_by):
  """The verdict of a difference within twice its standard error, naming its largest noise."""
  return f"not resolved (limited by {NOISE_NAMES[limited_by]} noise)"


def combined_verdict(rerr, drop, limited_by):
  """Joins the verdicts (holds, reversed, not resolved) on RErr and on the drop at one rate."""
  if rerr == drop:
    if rerr == "not resolved":
      return not_resolved(limited_by)
    return rerr
  if drop == "not resolved":
    return f"{rerr} on RErr only (the drop is not resolved: clean accuracy may explain it)"
  if rerr == "not resolved":
    return f"{drop} on the drop only (RErr not resolved)"
  return _SPLIT[(rerr, drop)]


def at_rates(kind, rates):
  """'<kind> at p = 1, 2.5 %' of rates given as fractions."""
  return f"{kind} at p = {', '.join(f'{100 * r:g}' for r in rates)} %"


def claim_verdict(per_rate):
  """One verdict of a claim from its (rate, combined verdict, limiting noise) per rate.

  Names every rate: where the claim holds, where it is reversed or split (then the verdict is
  *mixed*), and where it is not resolved, so a claim that holds at one rate of six never reads
  as holding everywhere.
  """
  rates, explanations = {}, {}
  for rate, verdict, _ in per_rate:
    kind, _, explanation = verdict.partition(" (")
    rates.setdefault(kind, []).append(rate)
    explanations.setdefault(kind, f" ({explanation}" if explanation else "")

  def at(kind):
    return at_rates(kind, rates[kind])

  resolved = [kind for kind in rates if kind != "not resolved"]
  if not resolved:
    limits = [limit for _, _, limit in per_rate]
    # The most frequent limit; a tie goes to the one met first (a set's order varies by run).
    return (f"not resolved at any rate (limited by {NOISE_NAMES[max(limits, key=limits.count)]} "
            "noise)")
  if len({kind.split(" on ")[0] for kind in resolved}) == 1:
    # One direction (e.g. holds, and holds on RErr only): the plain verdict first.
    resolved.sort(key=len)
    text = "; ".join(at(kind) + explanations[kind] for kind in resolved)
  else:
    text = f"mixed ({'; '.join(at(kind) for kind in resolved)})"
  if "not resolved" in rates:
    text += f"; {at('not resolved')}"
  return text
