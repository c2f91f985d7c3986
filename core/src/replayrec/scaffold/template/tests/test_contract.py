import pytest

from replayrec.testing import RecallContract

from __module__ import __Class__


class Test__Class__Contract(RecallContract):
    @pytest.fixture
    def make_stage(self):
        return lambda ctx: __Class__(__Class__.Config(), ctx)
