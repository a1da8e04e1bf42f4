"""The devnode and Miroir read the shared parts of GET /tasks the same way.

Both take status/type lists from miroir.core.tasks (parse_name_set); this holds them to it, so a
copy that drifts back into one of them fails here.
"""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from miroir.core.errors import MeiliError
from miroir.core.tasks import STATUSES, TASK_TYPES
from miroir.core.tasks import parse_task_query as core_parse
from miroir.devnode.tasks import parse_task_query as devnode_parse


def _outcome(parse):
    try:
        return "ok", parse()
    except MeiliError as error:
        return "error", error.code, error.body()["message"]


def _name_lists(names):
    item = st.one_of(
        st.sampled_from(names).map(str.upper),
        st.sampled_from(names).map(str.lower),
        st.sampled_from(names),
        st.just("*"),
        st.text(alphabet="abcXYZ *", max_size=6),
    )
    return st.lists(item, min_size=1, max_size=4).map(",".join)


@given(
    st.one_of(
        st.tuples(st.just("statuses"), _name_lists(STATUSES)),
        st.tuples(st.just("types"), _name_lists(TASK_TYPES)),
    )
)
# Found by this test: the devnode's own copy of the types lacked dsrUpdate and dsrClear.
@example(("types", ""))
@example(("types", "dsrUpdate"))
def test_status_and_type_lists_parse_alike(param_and_raw):
    param, raw = param_and_raw
    core = _outcome(lambda: getattr(core_parse({param: raw}), param))
    devnode = _outcome(lambda: getattr(devnode_parse([(param, raw)], paging=True).filter, param))
    assert core == devnode
