"""reddiff.benchmark.tensor_peak: the peak of the bytes live tensors hold, on a CPU."""

import torch

from reddiff.benchmark import tensor_peak


def test_peak_is_the_most_bytes_held_at_once_not_the_total_allocated():
    def work():
        a = torch.ones(1000)  # 4000 bytes
        b = torch.ones(1000)  # 8000 held
        del a  # 4000
        c = torch.ones(500)  # 6000
        return b, c

    assert tensor_peak(work) == 8000


def test_tensors_alive_before_the_work_do_not_count():
    kept = torch.ones(10_000)
    assert tensor_peak(lambda: torch.neg(kept)) == 40_000  # only the result
