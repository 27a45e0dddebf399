"""Where images come from (``data.source``), chosen by name: `SOURCES` holds one `Source` per
module (`tfvae.data.tfds`, `idx`, `folder`, `arrays`). A source reads its images into memory
(`Found`: uint8 images and labels per split, and the class names it knows), or, when they
exceed ``data.in_memory_mb``, builds streamed `tfvae.data.splits.Splits` itself."""
from typing import Dict, NamedTuple, Optional, Tuple

from tfvae.errors import ConfigError
from tfvae.registry import Registry

SOURCES = Registry("source", field="data.source", plural="sources")


class Found(NamedTuple):
    """A source's images in memory: ``{'train': (x, y), 'test': ..., 'validation': ...}`` (the
    splits it has) and its class names (None where it has none)."""

    arrays: Dict[str, tuple]
    names: Optional[Tuple[str, ...]]


class Source:
    """One way of reading images. ``needs``: the ``config.data`` field it cannot do without, and
    what that field holds (quoted in the refusal)."""

    needs: Tuple[str, str] = ()

    def validate(self, c) -> None:
        """Refuses, in one line, a ``config.data`` this source cannot read."""
        if self.needs and not c[self.needs[0]]:
            raise ConfigError(f"data.source={c.source!r} needs data.{self.needs[0]}: "
                              f"{self.needs[1]}")

    def arrays(self, c) -> Dict[str, tuple]:
        """Every split the source has, read into memory."""
        raise NotImplementedError

    def class_names(self, c) -> Optional[Tuple[str, ...]]:
        return None

    def read(self, c, seed: int, with_labels: bool, say, shard=None):
        """`Found` (in memory), or `Splits` (streamed); ``say`` takes notes for the user. By
        default every split read into memory."""
        return Found(self.arrays(c), self.class_names(c))
