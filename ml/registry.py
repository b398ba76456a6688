"""Each backend's builders for the layer types, activations, combinations, initializers and
objectives that `ml.spec` and `ml.catalog` declare.

A concept is declared once; each backend registers its implementation next to its framework
code, with a decorator keyed by the spec class or the catalog name (the Ludwig pattern):

    @TORCH.layers(S.Conv, ranks=(1, 2))
    class ConvBlock(CanonicalBlock): ...

    @KERAS.activations("gauss")
    def gauss(g): ...

A lookup that finds nothing fails naming the backend and what it lacks, and a layer builder
refuses a spec class whose rank it was not registered for instead of building another rank.
The tests derive their completeness checks from these tables. No framework is imported here.
"""

from abc import abstractmethod
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from ml import catalog
from ml import spec as S


class MissingBuilder(KeyError):
    """A backend has no implementation of a declared type or name (or not at its rank)."""

    def __str__(self) -> str:  # KeyError's own would quote the sentence
        return str(self.args[0])


Implementation = TypeVar("Implementation")
Builder = TypeVar("Builder", bound=Callable[..., Any])


class Table(Mapping[str, Any]):
    """One backend's implementations of one concept, looked up by the catalog's names."""

    def __init__(self, backend: str, concept: str, declared: Collection[str]):
        self.backend, self.concept, self.declared = backend, concept, declared

    def missing(self) -> list[str]:
        """What is declared but cannot be built, one sentence each."""
        problems = []
        for name in self.declared:
            try:
                self[name]
            except MissingBuilder as error:
                problems.append(str(error))
        return problems

    @abstractmethod
    def undeclared(self) -> list[str]:
        """Registered implementations that nothing declares (a typo, or a name since removed)."""


class Registry(Table):
    """Implementations keyed by the catalog's names."""

    def __init__(self, backend: str, concept: str, declared: Collection[str]):
        super().__init__(backend, concept, declared)
        self._entries: dict[str, Any] = {}

    def register(self, name: str, implementation: Implementation) -> Implementation:
        if name in self._entries:
            raise ValueError(f"the {self.backend} backend registers {self.concept} '{name}' twice")
        self._entries[name] = implementation
        return implementation

    def __call__(self, name: str) -> Callable[[Implementation], Implementation]:
        """A decorator registering what it decorates under `name`."""
        return lambda implementation: self.register(name, implementation)

    def add(self, implementations: Mapping[str, Any]) -> None:
        """Register several one-line implementations at once."""
        for name, implementation in implementations.items():
            self.register(name, implementation)

    def __getitem__(self, name: str) -> Any:
        try:
            return self._entries[name]
        except KeyError:
            raise MissingBuilder(f"the {self.backend} backend has no {self.concept} "
                                 f"'{name}'") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def undeclared(self) -> list[str]:
        return [name for name in self._entries if name not in self.declared]


@dataclass(frozen=True)
class _LayerBuilder:
    build: Callable[..., Any]
    ranks: tuple[int, ...] | None  # None: the layer type has no rank


class LayerRegistry(Table):
    """Layer builders keyed by spec class; a class is built by the builder registered for it
    or its nearest base (`S.Conv` serves `S.Conv1D` and `S.Conv2D`).

    Iterating and `[type name]` cover the declared types only (`S.LAYER_TYPES`).
    """

    def __init__(self, backend: str):
        super().__init__(backend, "layer type", S.LAYER_TYPES)
        self._builders: dict[type[S.Layer], _LayerBuilder] = {}

    def register(self, layer_class: type[S.Layer], implementation: Builder,
                 ranks: tuple[int, ...] | None = None) -> Builder:
        if layer_class in self._builders:
            raise ValueError(f"the {self.backend} backend registers a second builder for "
                             f"{layer_class.__name__}")
        if ranks is None and "rank" in layer_class.__class_vars__:  # declared by S.Spatial
            raise ValueError(f"{layer_class.__name__} has a rank: its {self.backend} builder "
                             "must name the ranks it builds")
        self._builders[layer_class] = _LayerBuilder(implementation, ranks)
        return implementation

    def __call__(self, layer_class: type[S.Layer], ranks: tuple[int, ...] | None = None
                 ) -> Callable[[Builder], Builder]:
        """A decorator registering the builder of `layer_class` (and its subclasses), written
        once for each of `ranks` where the type has a rank."""
        return lambda implementation: self.register(layer_class, implementation, ranks)

    def __getitem__(self, key: str | type[S.Layer] | S.Layer) -> Any:
        """The builder for a type name, a spec class or a spec layer."""
        if isinstance(key, str):
            if key not in S.LAYER_TYPES:
                raise MissingBuilder(f"'{key}' is not a layer type")
            layer_class: type[S.Layer] = S.LAYER_TYPES[key]
        else:
            layer_class = key if isinstance(key, type) else type(key)
        name = S.type_name(layer_class)
        for base in layer_class.__mro__:
            if base in self._builders:
                builder = self._builders[base]
                rank = getattr(layer_class, "rank", None)
                if builder.ranks is not None and rank not in builder.ranks:
                    raise MissingBuilder(
                        f"the {self.backend} backend builds {base.__name__} at rank "
                        f"{', '.join(map(str, builder.ranks))}, not {name} at rank {rank}")
                return builder.build
        raise MissingBuilder(f"the {self.backend} backend has no builder for layer type '{name}' "
                             f"({layer_class.__name__})")

    def __iter__(self) -> Iterator[str]:
        return (name for name in S.LAYER_TYPES if name in self)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def undeclared(self) -> list[str]:
        declared = tuple(S.LAYER_TYPES.values())
        return [cls.__name__ for cls in self._builders
                if not any(issubclass(d, cls) for d in declared)]


@dataclass(frozen=True)
class BackendRegistry:
    """Everything one backend registers; `module` is where its registrations run."""

    name: str
    module: str
    layers: LayerRegistry
    activations: Registry
    combinations: Registry

    def concepts(self) -> dict[str, Table]:
        return {"layer": self.layers, "activation": self.activations,
                "combination": self.combinations}


@dataclass(frozen=True)
class TrainingBackendRegistry(BackendRegistry):
    """A backend that trains also initializes weights and computes objectives (the ONNX
    export starts from trained weights and computes no loss)."""

    initializers: Registry
    objectives: Registry

    def concepts(self) -> dict[str, Table]:
        return {**super().concepts(), "initializer": self.initializers,
                "objective": self.objectives}


def _tables(name: str) -> tuple[LayerRegistry, Registry, Registry]:
    return (LayerRegistry(name), Registry(name, "activation", catalog.ACTIVATIONS),
            Registry(name, "combination", catalog.COMBINATIONS))


def _training_backend(name: str, module: str) -> TrainingBackendRegistry:
    layers, activations, combinations = _tables(name)
    return TrainingBackendRegistry(
        name, module, layers, activations, combinations,
        initializers=Registry(name, "initializer", catalog.INITIALIZERS),
        objectives=Registry(name, "objective", catalog.OBJECTIVES))


# torch first: where a process loads both frameworks, torch is imported before TensorFlow.
TORCH = _training_backend("torch", "ml.backends.torch_backend")
KERAS = _training_backend("keras", "ml.backends.keras_backend")
ONNX = BackendRegistry("onnx", "ml.onnx_export", *_tables("onnx"))
BACKENDS = (TORCH, KERAS, ONNX)
