"""Extension objects, created unbound here and bound to the app in the factory."""

from typing import TYPE_CHECKING

from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
csrf = CSRFProtect()

# What the models subclass. At run time it is `db.Model`, Flask-SQLAlchemy's subclass of Base (it adds
# `query` and the table name from the class name); mypy cannot follow that dynamic class, so it sees
# Base, which declares the same mapping.
if TYPE_CHECKING:
    Model = Base
else:
    Model = db.Model
