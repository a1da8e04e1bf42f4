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


@given(st.sampled_from(["statuses", "types"]), st.data())
@example("statuses", None)
def test_status_and_type_lists_parse_alike(param, data):
    if data is None:  # regression seed: a spaced list with a wildcard means no filter at all
        raw = " enqueued , * "
    else:
        raw = data.draw(_name_lists(STATUSES if param == "statuses" else TASK_TYPES))
    core = _outcome(lambda: getattr(core_parse({param: raw}), param))
    devnode = _outcome(lambda: getattr(devnode_parse([(param, raw)], paging=True).filter, param))
    assert core == devnode
