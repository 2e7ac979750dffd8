from flask import render_template

from shop.admin import bp
from shop.auth.decorators import admin_required


@bp.get("/")
@admin_required
def index():
    return render_template("admin/index.html")
