"""Dependency graph: which channels are coupled, what blocks them, and verified surgery."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

import slimkit
from slimkit.graph import DependencyGraph, apply_plan, register_op_rule
from slimkit.graph._rules import pointwise
from slimkit.testing import ConcatNet, TinyConvNet


def _group_with(graph: DependencyGraph, member: str) -> slimkit.graph.Group:
    return next(g for g in graph.groups if any(str(m).startswith(member) for m in g.members))


def _half(graph: DependencyGraph) -> list[int]:
    return [u for g in graph.groups for u in g.units[: len(g.units) // 2].tolist()]


def test_seed_cnn_groups_follow_conv_to_flatten_to_linear() -> None:
    graph = DependencyGraph.build(slimkit.create_model("seed-cnn"), torch.randn(1, 1, 28, 28))
    conv2 = _group_with(graph, "conv2.weight[0]")
    assert len(conv2.units) == 32
    # flatten → Linear: each conv2 channel owns a 7×7 block of fc1's input features
    assert {str(m) for m in conv2.members} >= {"fc1.weight[1]×1568", "conv2.bias[0]×32"}
    head = _group_with(graph, "fc2.weight[0]")
    assert not head.prunable and head.blocked_units == 10
    assert "model output" in head.reasons[0]


def test_residual_adds_couple_every_block_of_a_stage() -> None:
    graph = DependencyGraph.build(slimkit.create_model("resnet20"), torch.randn(1, 1, 28, 28))
    stage1 = _group_with(graph, "conv1.weight[0]")
    modules = set(stage1.modules)
    assert {
        "bn1",
        "layer1.0.bn2",
        "layer1.2.conv2",
        "layer2.0.conv1",
        "layer2.0.shortcut.0",
    } <= modules
    assert "layer1.0.conv1" in modules  # its input channels are the stage's channels
    inner = _group_with(graph, "layer1.0.conv1.weight[0]")
    assert set(inner.modules) == {"layer1.0.conv1", "layer1.0.bn1", "layer1.0.conv2"}


def test_grouped_conv_prunes_whole_groups() -> None:
    model = TinyConvNet()
    graph = DependencyGraph.build(model, torch.randn(1, 1, 8, 8))
    group = _group_with(graph, "conv.weight[0]")
    assert len(group.units) == 2 and group.unit_size == 2  # 2 conv groups of 2 channels
    pruned = copy.deepcopy(model)
    apply_plan(pruned, graph.plan(group.units[:1].tolist()))
    assert (pruned.grouped.groups, pruned.grouped.in_channels, pruned.grouped.out_channels) == (
        1,
        2,
        2,
    )
    assert pruned(torch.randn(1, 1, 8, 8)).shape == (1, 10)


def test_concat_and_chunk_offsets() -> None:
    graph = DependencyGraph.build(ConcatNet(), torch.randn(1, 1, 8, 8))
    group = _group_with(graph, "left.weight[0]")
    # chunk(2) + add: channel i of the left branch goes with channel i of the right branch
    assert {"left", "right", "bn", "head"} <= set(group.modules)
    assert len(group.units) == 4


class _SizedSplit(nn.Module):
    """Res2Net-style: channels split by a fixed width, each piece convolved on its own."""

    def __init__(self, split: str) -> None:
        super().__init__()
        self.split = split
        self.stem = nn.Conv2d(1, 16, 3, padding=1)
        self.a, self.b = nn.Conv2d(8, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1)
        self.head = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.stem(x)
        left, right = torch.split(y, 8, 1) if self.split == "split" else torch.chunk(y, 2, 1)
        y = torch.cat([self.a(left), self.b(right)], 1)
        return self.head(y.mean((2, 3)))


def test_a_split_by_fixed_sizes_blocks_its_channels_and_chunk_does_not() -> None:
    x = torch.randn(1, 1, 8, 8)
    sized = DependencyGraph.build(_SizedSplit("split"), x)
    stem = _group_with(sized, "stem.weight[0]")
    assert stem.blocked_units and any("pieces of fixed sizes" in r for r in stem.reasons)
    chunked = DependencyGraph.build(_SizedSplit("chunk"), x)
    assert not _group_with(chunked, "stem.weight[0]").blocked_units
    cfg = slimkit.StructuredConfig(ratio=0.5)
    pruned = slimkit.prune(_SizedSplit("split").eval(), cfg, example_inputs=x)
    assert pruned.stem.out_channels == 16 and pruned(x).shape == (1, 4)


class _PaddedFeatures(nn.Module):
    """EfficientViT's linear attention: a column of ones padded onto the value features."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 16, 3, padding=1)
        self.v = nn.Linear(16, 8)
        self.head = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.stem(x).flatten(2).transpose(1, 2)
        v = F.pad(self.v(tokens), (0, 1), value=1.0)
        out = v[..., :-1] / (v[..., -1:] + 1.0)
        return self.head(out.mean(1))


def test_a_padded_feature_dimension_is_kept_whole_and_the_rest_prunes() -> None:
    x = torch.randn(1, 1, 8, 8)
    model = _PaddedFeatures().eval()
    pruned = slimkit.prune(model, slimkit.StructuredConfig(ratio=0.5), example_inputs=x)
    assert pruned.v.out_features == 8  # the padded dimension
    assert pruned.stem.out_channels < 16 and pruned(x).shape == (1, 4)


def test_depthwise_conv_couples_input_and_output() -> None:
    model = torchvision.models.mobilenet_v2(num_classes=10)
    graph = DependencyGraph.build(model, torch.randn(1, 3, 32, 32))
    expand = _group_with(graph, "features.2.conv.0.0.weight[0]")
    assert "features.2.conv.1.0" in expand.modules  # the depthwise conv after the expansion


def test_multihead_attention_is_pruned_in_whole_heads() -> None:
    class Attn(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Linear(6, 16)
            self.attn = nn.MultiheadAttention(16, 4, batch_first=True)
            self.head = nn.Linear(16, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.embed(x)
            return self.head(h + self.attn(h, h, h, need_weights=False)[0])

    model, x = Attn().eval(), torch.randn(2, 5, 6)
    graph = DependencyGraph.build(model, x)
    group = _group_with(graph, "attn.in_proj_weight[0]")
    assert len(group.units) == 4 and group.unit_size == 4
    pruned = copy.deepcopy(model)
    removed = group.units[:2].tolist()
    apply_plan(pruned, graph.plan(removed))
    assert graph.verify(pruned, removed) is None
    assert (pruned.attn.num_heads, pruned.attn.embed_dim, pruned.attn.head_dim) == (2, 8, 4)
    assert pruned(x).shape == (2, 5, 3)


def test_vit_hidden_dim_attribute_is_updated() -> None:
    # torchvision's ViT class at a small width: its forward reshapes with self.hidden_dim
    model = torchvision.models.VisionTransformer(
        image_size=32, patch_size=16, num_layers=2, num_heads=4, hidden_dim=64, mlp_dim=128
    ).eval()
    x = torch.randn(1, 3, 32, 32)
    graph = DependencyGraph.build(model, x)
    hidden = _group_with(graph, "conv_proj.weight[0]")
    assert len(hidden.units) == 4 and hidden.unit_size == 16  # heads of the residual stream
    pruned = copy.deepcopy(model)
    removed = _half(graph)
    apply_plan(pruned, graph.plan(removed))
    assert graph.verify(pruned, removed) is None
    assert pruned.hidden_dim == 32
    assert pruned.encoder.layers[0].self_attention.num_heads == 2
    assert pruned.encoder.layers[0].mlp[0].out_features == 64
    assert pruned(x).shape == (1, 1000)


def test_unknown_op_blocks_its_channels_and_is_reported() -> None:
    class Odd(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Conv2d(1, 4, 3)
            self.b = nn.Conv2d(4, 4, 3)
            self.fc = nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = torch.fft.fft(self.a(x)).abs()  # no rule for fft
            return self.fc(self.b(x).mean((2, 3)))

    graph = DependencyGraph.build(Odd(), torch.randn(1, 1, 8, 8))
    assert graph.unsupported == {"fft_fft": ["<root> (Odd)"]}
    blocked = _group_with(graph, "a.weight[0]")
    assert not blocked.prunable and "unsupported op 'fft_fft' in <root>" in blocked.reasons[0]
    assert _group_with(graph, "b.weight[0]").prunable  # the rest of the model still prunes


def test_hidden_literal_reshape_is_caught_by_verification() -> None:
    class Literal(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Conv2d(1, 8, 3, padding=1)
            self.fc = nn.Linear(8 * 16, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(self.a(x).view(x.shape[0], 8, -1).flatten(1))  # 8 is hard-coded

    model, x = Literal(), torch.randn(1, 1, 4, 4)
    pruned = slimkit.prune(model, slimkit.StructuredConfig(ratio=0.5), example_inputs=x)
    report = pruned.slimkit_prune_report
    assert report["divergences_repaired"] and "view" in report["divergences_repaired"][0]
    assert pruned.a.out_channels == 8  # left whole rather than computing something else
    assert torch.equal(pruned(x), model(x))


def test_custom_rule_makes_an_op_prunable() -> None:
    class Gate(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Conv2d(1, 4, 3)
            self.fc = nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(torch.special.expit(self.a(x)).mean((2, 3)))

    x = torch.randn(1, 1, 6, 6)
    assert not _group_with(DependencyGraph.build(Gate(), x), "a.weight[0]").prunable
    register_op_rule("special_expit", pointwise)
    try:
        assert _group_with(DependencyGraph.build(Gate(), x), "a.weight[0]").prunable
    finally:
        del slimkit.graph.RULES["special_expit"]


def test_untraceable_model_names_the_failing_op() -> None:
    with pytest.raises(
        slimkit.UnsupportedOpError, match=r"forward pass failed in conv1 \(Conv2d\)"
    ):
        DependencyGraph.build(slimkit.create_model("seed-cnn"), torch.randn(1, 3, 28, 28))


def test_ignore_pattern_must_match() -> None:
    with pytest.raises(ValueError, match="matches no module"):
        DependencyGraph.build(
            slimkit.create_model("seed-cnn"), torch.randn(1, 1, 28, 28), ignore=["nope"]
        )


def test_table_lists_groups_and_blocked_reasons() -> None:
    graph = DependencyGraph.build(slimkit.create_model("seed-cnn"), torch.randn(1, 1, 28, 28))
    table = graph.table(members=True)
    assert "conv2 → fc1" in table and "fc1.weight[1]×1568" in table
    assert "blocked: reaches the model output" in table
    assert graph.summary()["prunable_units"] == 16 + 32 + 128


class _Mixed(nn.Module):
    """ConvTranspose, GroupNorm, PReLU and a squeeze-excite gate in one small model."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.gn = nn.GroupNorm(4, 8)
        self.act = nn.PReLU(8)
        self.up = nn.ConvTranspose2d(8, 6, 2, stride=2)
        self.se1, self.se2 = nn.Conv2d(6, 3, 1), nn.Conv2d(3, 6, 1)
        self.fc = nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.up(self.act(self.gn(self.conv(x))))
        gate = torch.sigmoid(self.se2(torch.relu(self.se1(x.mean((2, 3), keepdim=True)))))
        return self.fc((x * gate).mean((2, 3)))


def test_transposed_conv_group_norm_prelu_and_squeeze_excite_are_exact() -> None:
    from slimkit.testing import exactness_gap, fixed_init_

    model, x = fixed_init_(_Mixed()).eval(), torch.randn(1, 1, 6, 6)
    graph = DependencyGraph.build(model, x)
    norm = _group_with(graph, "conv.weight[0]")
    assert (len(norm.units), norm.unit_size) == (4, 2)  # GroupNorm groups go whole
    assert {"gn", "act", "up"} <= set(norm.modules)
    gate = _group_with(graph, "up.weight[1]")  # SE multiplies the up-sampled channels
    assert {"se1", "se2", "fc"} <= set(gate.modules)
    with torch.no_grad():
        scale = model(x).abs().max().item()
    assert exactness_gap(model, x) <= 1e-5 * scale + 1e-7
    pruned = slimkit.prune(model, slimkit.StructuredConfig(ratio=0.5), example_inputs=x)
    assert (pruned.gn.num_groups, pruned.gn.num_channels, pruned.up.out_channels) == (2, 4, 3)


def test_embedding_and_layer_norm_sequence_model() -> None:
    class Seq(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(20, 12)
            self.norm = nn.LayerNorm(12)
            self.mlp = nn.Sequential(nn.Linear(12, 24), nn.GELU(), nn.Linear(24, 12))
            self.head = nn.Linear(12, 3)

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            h = self.embed(ids)
            return self.head(self.norm(h + self.mlp(h)).mean(1))

    ids = torch.randint(0, 20, (2, 5))
    pruned = slimkit.prune(Seq(), slimkit.StructuredConfig(ratio=0.5), example_inputs=ids)
    assert (pruned.embed.embedding_dim, pruned.norm.normalized_shape) == (6, (6,))
    assert pruned.mlp[0].out_features == 12 and pruned(ids).shape == (2, 3)


class _EinsumAttention(nn.Module):
    """MaxViT-style attention: chunked qkv, a (heads, head_dim) reshape, einsum, a relative
    position bias looked up from a (positions, heads) table."""

    def __init__(self, dim: int = 16, n_heads: int = 4, seq: int = 5) -> None:
        super().__init__()
        self.n_heads, self.head_dim = n_heads, dim // n_heads
        self.to_qkv = nn.Linear(dim, 3 * dim)
        self.merge = nn.Linear(dim, dim)
        self.table = nn.Parameter(torch.randn(seq * seq, n_heads))
        self.register_buffer("index", torch.arange(seq * seq).flip(0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = torch.chunk(self.to_qkv(x), 3, dim=-1)
        q, k, v = (t.reshape(b, n, self.n_heads, self.head_dim).transpose(1, 2) for t in (q, k, v))
        bias = self.table[self.index].view(n, n, -1).permute(2, 0, 1)
        att = torch.softmax(torch.einsum("bhid,bhjd->bhij", q, k) + bias, dim=-1)
        out = torch.einsum("bhij,bhjd->bhid", att, v).transpose(1, 2).reshape(b, n, -1)
        return self.merge(out)


def test_einsum_attention_prunes_whole_heads_exactly() -> None:
    from slimkit.testing import exactness_gap

    model, x = _EinsumAttention().eval(), torch.randn(2, 5, 16)
    graph = DependencyGraph.build(model, x)
    heads = _group_with(graph, "to_qkv.weight[0]")
    assert len(heads.units) == 4
    assert "<root>.table[1]×4" in {str(m) for m in heads.members}
    assert exactness_gap(model, x) <= 1e-5 * model(x).abs().max().item()
    pruned = slimkit.prune(model, slimkit.StructuredConfig(ratio=0.5), example_inputs=x)
    assert (pruned.n_heads, pruned.to_qkv.out_features, pruned.table.shape[1]) == (2, 24, 2)
