"""Every kind of bad spec gives one clear `SpecError`: file, line, field, the bad value, what is allowed.

Each case writes a small spec into `tmp_path` (most are a change to a zoo spec through
``extends``), checks the message with ``pytest.raises(SpecError, match=...)`` and then the
`Problem` that carries it: its file, line and dotted field path.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from plmgraph.graph import resolve
from plmgraph.spec import Problem, SpecError, load_spec, zoo_dir
from plmgraph.spec.load import MAX_BYTES, load_text

GPT2 = "extends: gpt2\nname: bad\n"  # cases below start on line 3


def _write(tmp_path: Path, text: str | bytes, name: str = "bad.yaml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def _problem(ref, match: str, overrides=None) -> tuple[SpecError, Problem]:
    with pytest.raises(SpecError, match=match) as info:
        resolve(load_spec(ref, overrides))
    error = info.value
    assert error.problems, "a SpecError carries at least one problem"
    for p in error.problems:
        assert p.message and p.file, p  # every problem says what and where
    hits = [p for p in error.problems if re.search(match, str(p))]
    assert hits, f"no problem matches {match!r}: {error}"
    return error, hits[0]


def check(tmp_path: Path, text: str | bytes, match: str, *, field: str | None = None, line: int | None = None,
          column: int | None = None, file: Path | str | None = None, one: bool = True,
          name: str = "bad.yaml") -> Problem:
    """Write `text`, load it, and check the message and location of the matching problem."""
    path = _write(tmp_path, text, name)
    error, p = _problem(path, match)
    assert p.file == str(file if file is not None else path.resolve())
    if field is not None:
        assert p.field == field
    if line is not None:
        assert p.line == line
    if column is not None:
        assert p.column == column
    if one:
        assert len(error.problems) == 1, str(error)
    return p


# ------------------------------------------------------------------------- the loader


def test_yaml_syntax_error_names_line_and_the_open_bracket(tmp_path):
    p = check(tmp_path, "extends: gpt2\nsizes: {hidden: 64\nname: x\n",
              r"YAML syntax error: expected ',' or '\}', but got ':' \(while parsing a flow mapping "
              r"that starts at line 2, column 8\)", line=3, column=5)
    assert p.field == ""


def test_python_tag_is_rejected_not_run(tmp_path):
    check(tmp_path, GPT2 + "source: !!python/object/apply:os.system ['echo pwned']\n",
          r"YAML tag '!!python/object/apply:os.system' is not allowed; specs are plain data",
          field="source", line=3, column=9)


def test_custom_and_timestamp_tags_are_rejected(tmp_path):
    check(tmp_path, GPT2 + "source: !include other.yaml\n", r"YAML tag '!include' is not allowed", field="source")
    check(tmp_path, GPT2 + "source: 2019-02-14\n", r"YAML tag '!!timestamp' is not allowed", field="source")


def test_alias_bomb_is_bounded(tmp_path):
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for prev, cur in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 10) + "]")  # 10**9 strings
    check(tmp_path, "\n".join(lines) + "\n", r"aliases \(\*name\) expand the document to more than 100000 values"
          r".*alias bomb")


def test_nesting_too_deep(tmp_path):
    check(tmp_path, GPT2 + "source: " + "[" * 40 + "]" * 40 + "\n", r"nesting deeper than 32 levels", line=3)


def test_very_deep_nesting_is_an_error_not_a_recursion_error(tmp_path):
    # PyYAML's composer recurses per level; 20000 levels would blow the Python stack.
    check(tmp_path, "name: x\nsource: " + "[" * 20000 + "]" * 20000 + "\n", r"nesting deeper than 32 levels", line=2)


def test_file_too_large(tmp_path):
    check(tmp_path, GPT2 + "# padding\n" * (MAX_BYTES // 10 + 1), rf"larger than {MAX_BYTES} bytes, the limit")
    with pytest.raises(SpecError, match=r"file is \d+ bytes; the limit for a spec is"):
        load_text("a: 1\n" + "#" * MAX_BYTES)


def test_not_utf8_names_the_byte_and_where(tmp_path):
    check(tmp_path, b"extends: gpt2\nname: caf\xe9\n", r"not UTF-8 text: byte 0xe9 .*save the file as UTF-8",
          line=2, column=10)


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n"])
def test_empty_file(tmp_path, text):
    check(tmp_path, text, r"file is empty; a spec is a YAML mapping with at least `name`")


def test_top_level_list(tmp_path):
    check(tmp_path, "- extends: gpt2\n- name: x\n", r"a spec must be a YAML mapping of `key: value` lines, got a list",
          line=1)


def test_top_level_scalar(tmp_path):
    check(tmp_path, "gpt2\n", r"a spec must be a YAML mapping.*got a single value \('gpt2'\)", line=1)


def test_duplicate_key_names_both_lines(tmp_path):
    check(tmp_path, GPT2 + "sizes: {layers: 2}\nsizes: {layers: 3}\n",
          r"duplicate key 'sizes' \(first written at line 3\); write each key once", field="sizes", line=4)


def test_duplicate_nested_key(tmp_path):
    check(tmp_path, GPT2 + "block:\n  attention: {kv_heads: 4, kv_heads: 6}\n", r"duplicate key 'kv_heads'",
          field="block.attention.kv_heads", line=4)


def test_non_string_key(tmp_path):
    # YAML 1.1 reads `on` as a boolean: a classic trap.
    check(tmp_path, GPT2 + "on: 1\n", r"keys must be strings, but 'on' reads as bool True; quote it", line=3)


def test_second_document(tmp_path):
    check(tmp_path, GPT2 + "---\nname: other\n", r"one YAML document, but a second one starts here", line=3)


def test_merge_key_points_to_extends(tmp_path):
    check(tmp_path, GPT2 + "base: &b {layers: 2}\nsizes:\n  <<: *b\n",
          r"merge keys \(<<\) are not supported; use `extends`")


# -------------------------------------------------------------------- unknown fields


def test_unknown_top_level_key_with_did_you_mean(tmp_path):
    check(tmp_path, GPT2 + "sizs: {layers: 2}\n",
          r"unknown field 'sizs'; did you mean 'sizes'\? allowed: block, decoder, embeddings, encoder, extends",
          field="sizs", line=3, column=1)


def test_unknown_nested_key_with_did_you_mean(tmp_path):
    check(tmp_path, GPT2 + "block:\n  norm: {eps_: 1.0e-6}\n",
          r"unknown field 'eps_'; did you mean 'eps'\? allowed: bias, eps, kind$",
          field="block.norm.eps_", line=4, column=10)


def test_unknown_key_lists_the_fields_of_the_selected_variant(tmp_path):
    # t5 uses rmsnorm: the allowed fields are rmsnorm's, and an encoder-decoder reports it once.
    check(tmp_path, "extends: t5-small\nname: bad\nblock:\n  norm: {eps_: 1.0e-6}\n",
          r"unknown field 'eps_'; did you mean 'eps'\? allowed: eps, kind, offset$", field="block.norm.eps_", line=4)


@pytest.mark.parametrize(
    ("text", "match", "field", "line"),
    [
        pytest.param("block:\n  norm: {kind: rmsnrom}\n",
                     r"unknown kind 'rmsnrom'; did you mean 'rmsnorm'\? allowed: layernorm, rmsnorm$",
                     "block.norm.kind", 4, id="norm"),
        pytest.param("position: {kind: rotary}\n",
                     r"unknown kind 'rotary'; allowed: none, learned, sinusoidal, rope, alibi, t5_relative, "
                     r"xl_relative, glm_2d, disentangled$", "position.kind", 3, id="position"),
        pytest.param("block:\n  attention: {kind: flash}\n",
                     r"unknown kind 'flash'; allowed: self, two_stream, segment_memory, disentangled$",
                     "block.attention.kind", 4, id="attention"),
        pytest.param("block:\n  mlp: {kind: swiglu}\n", r"unknown kind 'swiglu'; allowed: dense, gated, moe$",
                     "block.mlp.kind", 4, id="mlp"),
        pytest.param("block:\n  mlp: {kind: moe, experts: 4, expert: {kind: swiglu}}\n",
                     r"unknown kind 'swiglu'; allowed: dense, gated$", "block.mlp.expert.kind", 4, id="moe-expert"),
        pytest.param("heads: [{kind: lm_head}]\n",
                     r"unknown kind 'lm_head'; allowed: lm, mlm, nsp, sop, "
                     r"sequence_classification, token_classification, image_classification, question_answering, "
                     r"multiple_choice, replaced_token_detection$",
                     "heads[0].kind", 3, id="head"),
        pytest.param("objectives: [{kind: causal}]\n",
                     r"unknown kind 'causal'; allowed: clm, mlm, nsp, sop, span_corruption, denoising, "
                     r"blank_infilling, permutation, classification$", "objectives[0].kind", 3, id="objective"),
        pytest.param("tuning: {kind: qlora}\n",
                     r"unknown kind 'qlora'; did you mean 'lora'\? allowed: full, lora, adapters, prefix, bitfit, ia3, "
                     r"prompt, ladder$",
                     "tuning.kind", 3, id="tuning"),
    ],
)
def test_unknown_kind_in_each_union(tmp_path, text, match, field, line):
    check(tmp_path, GPT2 + text, match, field=field, line=line)


def test_missing_kind(tmp_path):
    check(tmp_path, GPT2 + "heads: [{tie_embeddings: false}]\n",
          r"missing `kind`; every variant of this field is chosen by its kind \(allowed: image_classification, lm, "
          r"mlm, multiple_choice, nsp", field="heads[0]", line=3)


def test_missing_required_field_says_what_it_is(tmp_path):
    check(tmp_path, GPT2 + "block:\n  mlp: {kind: moe}\n", r"required field 'experts' is missing \(Number of experts\)",
          field="block.mlp.experts", line=4)


# ----------------------------------------------------------------------- wrong values


def test_string_for_int(tmp_path):
    check(tmp_path, GPT2 + "sizes: {layers: twelve}\n", r"sizes.layers: must be an integer, got 'twelve'$",
          field="sizes.layers", line=3, column=9)


def test_yaml_boolean_for_int(tmp_path):
    # `yes` is a YAML 1.1 boolean; pydantic alone would read it as 1.
    check(tmp_path, GPT2 + "sizes: {layers: yes}\n", r"must be an integer, got true$", field="sizes.layers", line=3)


def test_fraction_for_int(tmp_path):
    check(tmp_path, GPT2 + "sizes: {heads: 1.5}\n", r"must be a whole number, got 1.5$", field="sizes.heads")


def test_negative_size(tmp_path):
    check(tmp_path, GPT2 + "sizes: {hidden: -3}\n", r"sizes.hidden: must be greater than 0, got -3$",
          field="sizes.hidden", line=3)


def test_zero_size(tmp_path):
    check(tmp_path, GPT2 + "block:\n  mlp: {ffn: 0}\n", r"must be greater than 0, got 0$",
          field="block.mlp.ffn", line=4)


def test_probability_out_of_range(tmp_path):
    check(tmp_path, GPT2 + "embeddings: {dropout: 1.5}\n", r"must be less than 1, got 1.5$", field="embeddings.dropout")


def test_literal_with_did_you_mean(tmp_path):
    check(tmp_path, GPT2 + "block:\n  placement: pree\n",
          r"must be one of pre, post, sandwich, output, got 'pree'; did you mean 'pre'\?$", field="block.placement",
          line=4)


def test_mapping_expected(tmp_path):
    check(tmp_path, GPT2 + "sizes: 768\n", r"must be a mapping of fields \(ffn, heads, hidden, layers, max_positions, "
          r"vocab\), got 768$", field="sizes", line=3)


def test_union_of_bool_and_norm_reports_one_problem(tmp_path):
    check(tmp_path, GPT2 + "embeddings: {norm: 3}\n", r"must be true or false, or a mapping with a `kind`; got 3$",
          field="embeddings.norm")
    check(tmp_path, GPT2 + "embeddings: {norm: {kind: rmsnorm, eps_: 1}}\n", r"unknown field 'eps_'",
          field="embeddings.norm.eps_")


def test_format_version(tmp_path):
    check(tmp_path, GPT2 + "plmgraph: 2\n", r"unsupported spec format version 2; this plmgraph reads `plmgraph: 1`",
          field="plmgraph", line=3)


@pytest.mark.parametrize("name", ["my model", "-gpt", "", "gpt/2"])
def test_invalid_name(tmp_path, name):
    check(tmp_path, f"extends: gpt2\nname: '{name}'\n",
          rf"must start with a letter or digit and use only letters, digits and _ \. \+ -, got '{re.escape(name)}'",
          field="name", line=2)


# ------------------------------------------------------------------- cross-field rules


def test_hidden_not_divisible_by_heads(tmp_path):
    check(tmp_path, GPT2 + "sizes: {hidden: 770}\n",
          r"hidden \(770\) must be divisible by heads \(12\), or set block.attention.head_dim", field="sizes.hidden",
          line=3)


def test_heads_not_divisible_by_kv_heads(tmp_path):
    check(tmp_path, GPT2 + "block:\n  attention: {kv_heads: 5}\n",
          r"bad.yaml:4:15: block.attention.kv_heads: heads \(12\) must be divisible by kv_heads \(5\)$",
          field="block.attention.kv_heads", line=4, column=15)


def test_rope_fraction_giving_odd_rotary_dims(tmp_path):
    check(tmp_path, GPT2 + "position: {kind: rope, fraction: 0.046875}\n",
          r"head_dim \(64\) \* fraction \(0.046875\) = 3 rotary dimensions; it must be a whole even number",
          field="position.fraction", line=3)


def test_top_k_above_experts(tmp_path):
    check(tmp_path, "extends: mixtral-8x7b\nblock:\n  mlp: {top_k: 9}\n", r"top_k \(9\) must be at most experts \(8\)",
          field="block.mlp.top_k", line=3)


def test_sharing_groups_not_dividing_layers(tmp_path):
    check(tmp_path, "extends: albert-base\nsharing: {kind: groups, groups: 5}\n",
          r"encoder layers \(12\) must be divisible by sharing.groups \(5\)", field="sharing.groups", line=2)


def test_sharing_groups_missing(tmp_path):
    check(tmp_path, "extends: albert-base\nsharing: {kind: groups}\n", r"sharing kind 'groups' needs `groups`",
          field="sharing.groups", line=2)


def test_parallel_residual_with_post_placement(tmp_path):
    check(tmp_path, GPT2 + "block:\n  placement: post\n  residual: {kind: parallel}\n",
          r"parallel residual reads normalised inputs; placement must be 'pre', not 'post'", field="block.placement",
          line=4)


def test_cross_attention_in_decoder_only(tmp_path):
    check(tmp_path, GPT2 + "block:\n  cross_attention: true\n",
          r"cross_attention needs an encoder to attend to; the decoder of a decoder model has none",
          field="block.cross_attention", line=4)


def test_stack_the_family_does_not_have(tmp_path):
    check(tmp_path, GPT2 + "encoder: {layers: 2}\n",
          r"a decoder model has no encoder stack; remove `encoder` or change `family`", field="encoder", line=3)


def test_learned_positions_without_max_positions(tmp_path):
    text = """\
        plmgraph: 1
        name: tiny
        family: decoder
        sizes: {vocab: 100, hidden: 64, layers: 2, heads: 4}
        position: {kind: learned}
        """
    # max_positions was never written: the line is that of the `sizes` that should hold it.
    check(tmp_path, text, r"learned positions need sizes.max_positions", field="sizes.max_positions", line=4)


def test_learned_positions_with_max_positions_removed(tmp_path):
    check(tmp_path, GPT2 + "sizes: {max_positions: null}\n", r"learned positions need sizes.max_positions",
          field="sizes.max_positions", line=3)


def test_image_head_without_patches(tmp_path):
    check(tmp_path, GPT2 + "heads: [{kind: image_classification, labels: 10}]\nobjectives: [{kind: classification}]\n",
          r"image_classification needs embeddings.patches", field="heads[0].kind", line=3)


def test_patch_size_not_dividing_image(tmp_path):
    check(tmp_path, "extends: vit-base\nembeddings: {patches: {patch_size: 15}}\n",
          r"image_size \(224\) must be divisible by patch_size \(15\)", field="embeddings.patches.patch_size", line=2)


def test_classifier_needs_labels(tmp_path):
    check(tmp_path, GPT2 + "heads: [{kind: lm}, {kind: sequence_classification}]\n",
          r"sequence_classification needs `labels` \(the number of classes\)", field="heads[1]", line=3)


def test_mlm_rates_not_summing_to_one(tmp_path):
    check(tmp_path, "extends: bert-base\nobjectives:\n  - {kind: mlm, mask: 0.5}\n  - {kind: nsp}\n",
          r"mask \(0.5\) \+ random \(0.1\) \+ keep \(0.1\) must sum to 1, got 0.7", field="objectives[0]", line=3)


def test_duplicate_head_names(tmp_path):
    check(tmp_path, "extends: bert-base\nheads:\n  - {kind: mlm}\n  - {kind: nsp, name: mlm}\n",
          r"head name 'mlm' is already used by heads\[0\]; give each head a distinct `name`", field="heads[1].name",
          line=4)


def test_tied_head_with_factorized_embeddings_and_no_transform(tmp_path):
    check(tmp_path, "extends: albert-base\nheads:\n  - {kind: mlm, transform: null}\n  - {kind: sop}\n",
          r"a tied mlm head projects hidden \(768\) onto the embedding matrix of width embeddings.size \(128\); "
          r"add a `transform` or untie it", field="heads[0].transform", line=3)


def _line_of(path: Path, needle: str, nth: int = 1) -> int:
    lines = [i for i, text in enumerate(path.read_text().splitlines(), 1) if needle in text]
    return lines[nth - 1]


def test_objective_without_its_head_points_at_the_parent_file(tmp_path):
    # The child drops the nsp head; the nsp objective was written in bert-base.yaml.
    bert = (zoo_dir() / "bert-base.yaml").resolve()
    p = check(tmp_path, "extends: bert-base\nheads: [{kind: mlm}]\n",
              r"objective 'nsp' needs a head of kind 'nsp'; heads are: mlm", file=bert, field="objectives[1].kind")
    assert p.line == _line_of(bert, "- {kind: nsp}", 2)


def test_error_in_an_inherited_field_points_at_the_parent_file(tmp_path):
    llama3 = (zoo_dir() / "llama3-8b.yaml").resolve()
    p = check(tmp_path, "extends: llama3-8b\nname: bad\nsizes: {heads: 4}\n",
              r"heads \(4\) must be divisible by kv_heads \(8\)", file=llama3, field="block.attention.kv_heads")
    assert p.line == _line_of(llama3, "kv_heads: 8")


def test_stack_error_points_at_the_top_level_block_that_wrote_it(tmp_path):
    # The decoder stack exists (layers: 3) but the bad value is in the top-level block.
    check(tmp_path, GPT2 + "decoder: {layers: 3}\nblock:\n  attention: {kv_heads: 5}\n",
          r"heads \(12\) must be divisible by kv_heads \(5\)", field="block.attention.kv_heads", line=5)


def test_stack_error_points_at_the_stack_when_written_there(tmp_path):
    check(tmp_path, "extends: t5-small\nname: bad\ndecoder:\n  block:\n    norm: {eps: 0}\n",
          r"must be greater than 0, got 0", field="decoder.block.norm.eps", line=5)


def test_encoder_decoder_reports_a_block_error_once(tmp_path):
    # One top-level block feeds both stacks: one problem, not three.
    check(tmp_path, "extends: t5-small\nname: bad\nblock:\n  norm: {eps: -1.0}\n", r"must be greater than 0, got -1.0",
          field="block.norm.eps", line=4, one=True)


def test_several_problems_are_all_reported(tmp_path):
    path = _write(tmp_path, GPT2 + "sizes: {hidden: -3}\nblock:\n  mlp: {kind: swiglu}\ntuning: {kind: qlora}\n")
    error, _ = _problem(path, r"must be greater than 0")
    assert [p.field for p in error.problems] == ["sizes.hidden", "block.mlp.kind", "tuning.kind"]
    assert [p.line for p in error.problems] == [3, 5, 6]


# --------------------------------------------------------------------------- extends


def test_cyclic_extends_names_the_cycle(tmp_path):
    _write(tmp_path, "extends: b.yaml\nname: a\n", "a.yaml")
    _write(tmp_path, "extends: a.yaml\nname: b\n", "b.yaml")
    _, p = _problem(tmp_path / "a.yaml", r"`extends` forms a cycle: a.yaml -> b.yaml -> a.yaml")
    assert p.field == "extends" and p.line == 1
    assert p.file in (str((tmp_path / "a.yaml").resolve()), str((tmp_path / "b.yaml").resolve()))


def test_self_extends(tmp_path):
    check(tmp_path, "extends: bad.yaml\nname: bad\n", r"a spec cannot extend itself \(bad.yaml extends 'bad.yaml'\)",
          field="extends", line=1)


def test_extends_missing_file(tmp_path):
    check(tmp_path, "name: bad\nextends: nothere.yaml\n",
          rf"no such spec file: 'nothere.yaml' \(looked in {re.escape(str(tmp_path.resolve()))}\)",
          field="extends", line=2, column=1)


def test_extends_unknown_zoo_name_with_did_you_mean(tmp_path):
    check(tmp_path, "extends: gtp2\n",
          r"'gtp2' is not a spec file or zoo name; did you mean 'gpt2'.*\(zoo: albert-base",
          field="extends", line=1)


def test_extends_list_item(tmp_path):
    check(tmp_path, "extends: [gpt2, lama2-7b]\n",
          r"'lama2-7b' is not a spec file or zoo name; did you mean 'llama2-7b'",
          field="extends[1]", line=1, column=17)


def test_extends_wrong_type(tmp_path):
    check(tmp_path, "extends: {name: gpt2}\n", r"`extends` must be a zoo name, a path or a list of them, got \{'name'",
          field="extends", line=1)


def test_error_in_a_parent_file_names_the_parent(tmp_path):
    parent = _write(tmp_path, GPT2 + "sizes: {layers: 2\n", "parent.yaml")
    _write(tmp_path, "extends: parent.yaml\nname: child\n", "child.yaml")
    _, p = _problem(tmp_path / "child.yaml", r"YAML syntax error")
    assert p.file == str(parent.resolve())


def test_missing_spec_file_and_directory(tmp_path):
    with pytest.raises(SpecError, match=r"no such spec file: '.*/nope.yaml'$"):
        load_spec(str(tmp_path / "nope.yaml"))
    with pytest.raises(SpecError, match=r"is a directory, not a spec file"):
        load_spec(tmp_path)
    with pytest.raises(SpecError, match=r"'gpt-2' is not a spec file or zoo name; did you mean 'gpt2'"):
        load_spec("gpt-2")


# ------------------------------------------------------------------------- overrides


@pytest.mark.parametrize(
    ("override", "match", "field"),
    [
        ("layers", r"'layers' is not key=value; write e.g. layers=2,attention.kv_heads=8", ""),
        ("=3", r"'=3' is not key=value", ""),
        ("attention..kv_heads=3", r"key 'attention..kv_heads' has an empty part", ""),
        ("layers=[2", r"layers: value '\[2' is not a valid YAML value", ""),
        ("layerz=2", r"layerz: unknown field 'layerz'; did you mean 'layers'\? a key starts with a top-level", ""),
        ("attention.kv_head=4", r"unknown field 'kv_head'; did you mean 'kv_heads'\? allowed: dropout, head_dim",
         "block.attention.kv_head"),
        ("attention.kv_heads=5", r"heads \(12\) must be divisible by kv_heads \(5\)", "block.attention.kv_heads"),
        ("layers=-1", r"must be greater than 0, got -1", "sizes.layers"),
        ("sizes.hidden.x=1", r"sizes.hidden.x: sizes.hidden is the value 768; cannot set 'x' in it", ""),
        ("heads.3.kind=lm", r"heads is a list of 1; cannot descend into 3", ""),
        ("tuning.rank=4", r"tuning: missing `kind`; .* \(allowed: adapters, bitfit, full, ia3, ladder, lora, prefix, "
                          r"prompt\)", "tuning"),
    ],
)
def test_bad_override(override, match, field):
    _, p = _problem("gpt2", match, overrides=override)
    assert p.file == "--override" and p.line is None
    assert p.field == field


def test_override_replaces_the_files_position():
    # The bad value came from the command line, not from llama3-8b.yaml where kv_heads is written.
    _, p = _problem("llama3-8b", r"heads \(32\) must be divisible by kv_heads \(5\)",
                    overrides=["attention.kv_heads=5"])
    assert p.file == "--override" and p.field == "block.attention.kv_heads"


def test_name_taken_from_an_invalid_file_name(tmp_path):
    # No `name:` in the file: the name is the file's stem, and the error says so (not gpt2.yaml's line).
    p = check(tmp_path, "extends: gpt2\n", r"got 'my model' \(the name defaults to the file name; set `name:`",
              field="name", file=(tmp_path / "my model.yaml").resolve(), name="my model.yaml")
    assert p.line is None
