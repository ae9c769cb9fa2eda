"""tunewiz: from a topic, documents or a CSV of questions to a fine-tuned model for llama.cpp/Ollama.

The headless core lives in this package; `tunewiz.generators` makes QA pairs and
`tunewiz.tui` is the Textual wizard over the core. Nothing here imports Textual,
and nothing but training and export imports torch.
"""

__version__ = "0.1.0"
