import pytest


@pytest.fixture(scope="session")
def tiny_config_dir(tmp_path_factory) -> str:
    """Only a config.json: what --random-weights needs."""
    from transformers import Qwen2Config

    directory = tmp_path_factory.mktemp("tiny-qwen2")
    Qwen2Config(vocab_size=1000, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512).save_pretrained(directory)
    return str(directory)


@pytest.fixture(scope="session")
def tiny_config_with_tokenizer(tmp_path_factory) -> str:
    """A config.json sized to the SmolLM2 tokenizer, and that tokenizer, for --dataset."""
    from transformers import Qwen2Config

    from tests.tiny_models import smollm2_tokenizer

    directory = tmp_path_factory.mktemp("tiny-qwen2-tok")
    tokenizer = smollm2_tokenizer()
    Qwen2Config(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return str(directory)
