"""QA pair generation (installed as tunewiz.generators): providers, prompts, chunking, the async runner."""
