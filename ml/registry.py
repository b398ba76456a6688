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

from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, get_args

from ml import catalog
from ml import spec as S


class MissingBuilder(KeyError):
    """A backend has no implementation of a declared type or name (or not at its rank)."""

    def __str__(self) -> str:  # KeyError's own would quote the sentence
        return str(self.args[0])


class Registry(Mapping[str, Any]):
    """One backend's implementations of one concept, keyed by the catalog's names."""

    def __init__(self, backend: str, concept: str, declared: Collection[str]):
        self.backend, self.concept, self.declared = backend, concept, declared
        self._entries: dict[str, Any] = {}

    def register(self, name: str, implementation: Any) -> Any:
        if name in self._entries:
            raise ValueError(f"the {self.backend} backend registers {self.concept} '{name}' twice")
        self._entries[name] = implementation
        return implementation

    def __call__(self, name: str) -> Callable[[Any], Any]:
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

    def missing(self) -> list[str]:
        """What is declared but cannot be built, one sentence each."""
        problems = []
        for name in self.declared:
            try:
                self[name]
            except MissingBuilder as error:
                problems.append(str(error))
        return problems

    def undeclared(self) -> list[str]:
        """Registered names that nothing declares (a typo, or a name since removed)."""
        return [name for name in self._entries if name not in self.declared]


def type_name(layer_class: type[S.Layer]) -> str:
    """The `type` a spec class stands for: `S.Conv2D` → 'conv2d'."""
    field = layer_class.model_fields.get("type")
    names = get_args(field.annotation) if field is not None else ()
    return names[0] if names else layer_class.__name__


@dataclass(frozen=True)
class _LayerBuilder:
    build: Callable[..., Any]
    ranks: tuple[int, ...] | None  # None: the layer type has no rank


class LayerRegistry(Registry):
    """Layer builders keyed by spec class; a class is built by the builder registered for it
    or its nearest base (`S.Conv` serves `S.Conv1D` and `S.Conv2D`).

    Iterating and `[type name]` cover the declared types only (`S.LAYER_TYPES`).
    """

    def __init__(self, backend: str):
        super().__init__(backend, "layer type", S.LAYER_TYPES)
        self._builders: dict[type[S.Layer], _LayerBuilder] = {}

    def register(self, layer_class: type[S.Layer], implementation: Any,  # type: ignore[override]
                 ranks: tuple[int, ...] | None = None) -> Any:
        if layer_class in self._builders:
            raise ValueError(f"the {self.backend} backend registers a second builder for "
                             f"{layer_class.__name__}")
        if ranks is None and "rank" in layer_class.__class_vars__:  # declared by S.Spatial
            raise ValueError(f"{layer_class.__name__} has a rank: its {self.backend} builder "
                             "must name the ranks it builds")
        self._builders[layer_class] = _LayerBuilder(implementation, ranks)
        return implementation

    def __call__(self, layer_class: type[S.Layer],  # type: ignore[override]
                 ranks: tuple[int, ...] | None = None) -> Callable[[Any], Any]:
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
        name = type_name(layer_class)
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
    # Only where the backend trains: the ONNX export starts from trained weights.
    initializers: Registry | None
    objectives: Registry | None

    def concepts(self) -> dict[str, Registry]:
        found = {"layer": self.layers, "activation": self.activations,
                 "combination": self.combinations, "initializer": self.initializers,
                 "objective": self.objectives}
        return {concept: registry for concept, registry in found.items() if registry is not None}


def _backend(name: str, module: str, trains: bool) -> BackendRegistry:
    def registry(concept: str, declared: Collection[str]) -> Registry | None:
        return Registry(name, concept, declared) if trains else None

    return BackendRegistry(
        name=name, module=module, layers=LayerRegistry(name),
        activations=Registry(name, "activation", catalog.ACTIVATIONS),
        combinations=Registry(name, "combination", catalog.COMBINATIONS),
        initializers=registry("initializer", catalog.INITIALIZERS),
        objectives=registry("objective", catalog.OBJECTIVES))


# torch first: where a process loads both frameworks, torch is imported before TensorFlow.
TORCH = _backend("torch", "ml.backends.torch_backend", trains=True)
KERAS = _backend("keras", "ml.backends.keras_backend", trains=True)
ONNX = _backend("onnx", "ml.onnx_export", trains=False)
BACKENDS = (TORCH, KERAS, ONNX)
