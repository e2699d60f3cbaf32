//! The built-in operator files, shipped as readable YAML in `crates/sql/operators/` and embedded here.

/// (file name, text) of every built-in operator file.
pub(crate) const BUILTIN: &[(&str, &str)] = &[
    ("best.yaml", include_str!("../../operators/best.yaml")),
    ("classify.yaml", include_str!("../../operators/classify.yaml")),
    ("condense.yaml", include_str!("../../operators/condense.yaml")),
    ("consensus.yaml", include_str!("../../operators/consensus.yaml")),
    ("dedupe.yaml", include_str!("../../operators/dedupe.yaml")),
    ("fix.yaml", include_str!("../../operators/fix.yaml")),
    ("language.yaml", include_str!("../../operators/language.yaml")),
    ("meaning.yaml", include_str!("../../operators/meaning.yaml")),
    ("normalize.yaml", include_str!("../../operators/normalize.yaml")),
    ("outliers.yaml", include_str!("../../operators/outliers.yaml")),
    ("parse_date.yaml", include_str!("../../operators/parse_date.yaml")),
    (
        "pipeline_analyze.yaml",
        include_str!("../../operators/pipeline_analyze.yaml"),
    ),
    (
        "pipeline_dedupe.yaml",
        include_str!("../../operators/pipeline_dedupe.yaml"),
    ),
    (
        "pipeline_enrich.yaml",
        include_str!("../../operators/pipeline_enrich.yaml"),
    ),
    (
        "pipeline_filter.yaml",
        include_str!("../../operators/pipeline_filter.yaml"),
    ),
    (
        "semantic_aligns.yaml",
        include_str!("../../operators/semantic_aligns.yaml"),
    ),
    (
        "semantic_ask.yaml",
        include_str!("../../operators/semantic_ask.yaml"),
    ),
    (
        "semantic_contradicts.yaml",
        include_str!("../../operators/semantic_contradicts.yaml"),
    ),
    (
        "semantic_extracts.yaml",
        include_str!("../../operators/semantic_extracts.yaml"),
    ),
    (
        "semantic_implies.yaml",
        include_str!("../../operators/semantic_implies.yaml"),
    ),
    (
        "semantic_matches.yaml",
        include_str!("../../operators/semantic_matches.yaml"),
    ),
    (
        "semantic_same_as.yaml",
        include_str!("../../operators/semantic_same_as.yaml"),
    ),
    (
        "semantic_score.yaml",
        include_str!("../../operators/semantic_score.yaml"),
    ),
    ("sentiment.yaml", include_str!("../../operators/sentiment.yaml")),
    (
        "sentiment_agg.yaml",
        include_str!("../../operators/sentiment_agg.yaml"),
    ),
    (
        "smart_translate.yaml",
        include_str!("../../operators/smart_translate.yaml"),
    ),
    ("summarize.yaml", include_str!("../../operators/summarize.yaml")),
    ("themes.yaml", include_str!("../../operators/themes.yaml")),
    ("tldr.yaml", include_str!("../../operators/tldr.yaml")),
    ("topics.yaml", include_str!("../../operators/topics.yaml")),
    (
        "topics_dimension.yaml",
        include_str!("../../operators/topics_dimension.yaml"),
    ),
];
