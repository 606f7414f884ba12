"""One example of each primitive of several inputs (matmul, attention): its layer and its inputs'
shapes, checked face by face in tests/test_compute_matmul.py and tests/test_compute_attention.py."""

from scalelab.blocks import layers as L

SEVERAL = {
    "matmul": [L.Matmul(), [(2, 5, 4), (2, 4, 3)]],
    "attention": [L.Attention(), [(2, 5, 4), (2, 7, 4), (2, 7, 6)]],
}
