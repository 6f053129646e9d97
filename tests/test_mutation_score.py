"""The mutation score (`make mutation`): mutants named by what they change, equivalent ones left
out of the score, and records that no longer match listed."""

from __future__ import annotations

from tests.mutation.score import (
    Equivalent,
    Identity,
    Mutant,
    changed_lines,
    function_of,
    read_equivalents,
    tally,
)

DIFF = """--- src/modelarts_cleanup/cloud/answers.py
+++ src/modelarts_cleanup/cloud/answers.py
@@ -1,4 +1,4 @@
 def judge(reply: Reply, what: str, attempts: int) -> Verdict | ApiError:
     status = reply.status
-    if 200 <= status < 300:
+    if 200 <= status <= 300:
         if not reply.body.strip() or reply.json_object() is not None:"""


def test_a_mutant_is_named_by_its_function_and_the_lines_it_changes() -> None:
    assert changed_lines(DIFF) == ("if 200 <= status < 300:", "if 200 <= status <= 300:")
    assert function_of("modelarts_cleanup.cloud.answers.x_judge__mutmut_46") == "judge"
    assert function_of("modelarts_cleanup.cloud.answers.xǁReplyǁof__mutmut_3") == "Reply.of"


def test_the_adjusted_score_leaves_equivalent_mutants_out() -> None:
    same = Identity("answers", "clip", "a", "b")
    other = Identity("answers", "clip", "c", "d")
    gone = Identity("answers", "clip", "e", "f")
    mutants = [
        Mutant("m1", Identity("answers", "judge", "", ""), "killed"),
        Mutant("m2", Identity("answers", "judge", "", ""), "killed"),
        Mutant("m3", Identity("answers", "judge", "", ""), "killed"),
        Mutant("m4", same, "survived"),
        Mutant("m5", other, "survived"),
        Mutant("m6", Identity("answers", "judge", "", ""), "not checked"),
    ]
    records = [Equivalent(same, "why"), Equivalent(gone, "why")]
    rows, survivors, equivalent, stale = tally(mutants, records, ["answers", "planning"])
    answers, planning = rows
    assert (answers.mutants, answers.killed, answers.equivalent, answers.survived) == (6, 3, 1, 1)
    assert answers.adjusted == 100 * 3 / 5
    assert (planning.mutants, planning.adjusted) == (0, 100.0)
    assert ([m.name for m in survivors], [m.name for m in equivalent]) == (["m5"], ["m4"])
    assert stale == [records[1]]


def test_every_recorded_equivalent_mutant_says_why_and_is_recorded_once() -> None:
    records = read_equivalents()
    assert records
    assert all(len(record.why) > 20 for record in records)
    identities = [record.identity for record in records]
    assert len(identities) == len(set(identities))
