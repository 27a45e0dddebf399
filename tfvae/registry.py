"""Name -> constructor registries: one place to add a part (prior, posterior, likelihood, ...)."""
from typing import Callable, Dict, Generic, List, TypeVar

from tfvae.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """A named set of constructors of one kind of part.

    >>> priors = Registry("prior", field="model.prior.name")
    >>> @priors.register("standard_normal")
    ... class StandardNormal: ...
    >>> priors.get("standard_normal")
    """

    def __init__(self, kind: str, field: str = "", plural: str = ""):
        self.kind = kind
        self.plural = plural or f"{kind}s"
        self.field = field  # the config field that names the part, quoted in errors
        self._items: Dict[str, Callable[..., T]] = {}

    def register(self, name: str):
        def decorator(obj):
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            return obj
        return decorator

    def get(self, name: str) -> Callable[..., T]:
        try:
            return self._items[name]
        except KeyError:
            where = f"{self.field}={name!r}: unknown {self.kind}" if self.field else \
                f"unknown {self.kind} {name!r}"
            raise ConfigError(
                f"{where}; valid {self.plural} are: {', '.join(self.names())}") from None

    def build(self, key: str, /, *args, **kwargs) -> T:
        return self.get(key)(*args, **kwargs)

    def create(self, block, /, **context) -> T:
        """The part named by ``block.name``, built from its config block: the one way every
        part is made from a config. A class builds through its ``from_config(block, **context)``,
        a function is called as ``f(block, **context)``; ``context`` is what the part needs from
        the model around it (the latent size, the image shape, the encoder, ...)."""
        item = self.get(block.name)
        return getattr(item, "from_config", item)(block, **context)

    def names(self) -> List[str]:
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        return name in self._items
